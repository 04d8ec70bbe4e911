"""SHA-256 manifest of a run's evidence files.

`reports/SHA256SUMS` is in the `sha256sum` format, so anyone can check a report folder
they were handed with `cd reports && sha256sum -c SHA256SUMS`; the same entries are
embedded in the certification summary (JSON and HTML), which is why the summary files
themselves are not listed (they contain the manifest). Only the run's own outputs are
listed — results, evidence, traffic, JUnit, verdicts and the rendered HTML report — not
whatever else shares the folder (history of earlier runs, mutation scores, plots).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

MANIFEST_FILE = "SHA256SUMS"
INCLUDED = ("verdicts.json", "junit.xml", "traffic.pcap", "allure-results", "evidence", "html")
# Derived copies of the summary inside the Allure results (they embed this manifest).
EXCLUDED_PREFIXES = ("charger-harness-summary",)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def evidence_files(reports: Path) -> list[Path]:
    reports = Path(reports)
    found: list[Path] = []
    for name in INCLUDED:
        p = reports / name
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    return sorted((f for f in found if not f.name.startswith(EXCLUDED_PREFIXES)),
                  key=lambda f: f.relative_to(reports).as_posix())


def build_manifest(reports: Path) -> list[dict[str, Any]]:
    reports = Path(reports)
    return [{"path": f.relative_to(reports).as_posix(), "sha256": sha256_file(f), "bytes": f.stat().st_size}
            for f in evidence_files(reports)]


def write_manifest(reports: Path, entries: list[dict[str, Any]]) -> Path:
    path = Path(reports) / MANIFEST_FILE
    path.write_text("".join(f"{e['sha256']}  {e['path']}\n" for e in entries), "utf-8")
    return path


def verify_manifest(reports: Path) -> list[str]:
    """Problems found checking `SHA256SUMS` against the files (empty list: all intact)."""
    reports = Path(reports)
    path = reports / MANIFEST_FILE
    if not path.is_file():
        return [f"{path}: no manifest"]
    problems = []
    for line in path.read_text("utf-8").splitlines():
        digest, _, name = line.partition("  ")
        f = reports / name
        if not f.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(f) != digest:
            problems.append(f"{name}: checksum differs")
    return problems
