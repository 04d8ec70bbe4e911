"""Run progress, so a run against a real DUT can stop and resume (`run --resume`).

Every finished case is appended to `progress.jsonl` (one JSON object a line, flushed as
it happens, so a Ctrl-C or a power cut loses at most the case in flight):

    {"type": "run",  "run": "<id>", "key": "<key>", "started": "...", "resumed_from": "<id>"|null, "duts": [...]}
    {"type": "case", "run": "<id>", "key": "<key>", "nodeid": ..., "case_id": ..., "verdict": ..., ...}

`key` names what was tested: the DUT profile(s) as they appear in the report (no
credentials), the simulator fault if any, and the SHA-256 of the test library. `--resume`
continues the most recent run with the same key: its finished cases are not run again,
their verdicts are carried into the new run (written again under the new run id, marked
`carried_from`), so the last run in the file always holds the whole picture.

A run writes nothing until its first case finishes: under pytest-xdist every worker reads
the file during collection, before any case runs, so all workers see the same history.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets as _secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .profile import DutProfile

PROGRESS_FILE = "progress.jsonl"


def library_digest(root: Path) -> str:
    """SHA-256 of the test library (the one the certification summary reports)."""
    from ..report.publish import library_hash

    return library_hash(root)


def run_key(profiles: Iterable[DutProfile], library_root: Path, fault: str | None = None) -> str:
    h = hashlib.sha256()
    views = sorted((p.public_view() for p in profiles), key=lambda v: (v["kind"], v["name"]))
    h.update(json.dumps(views, sort_keys=True, default=str).encode())
    h.update(b"\0" + (fault or "").encode() + b"\0")
    h.update(library_digest(library_root).encode())
    return h.hexdigest()[:24]


@dataclass
class PreviousRun:
    run_id: str
    started: str
    key: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)   # one per finished case, last verdict wins


def read_runs(path: Path) -> list[PreviousRun]:
    """Every run in the file, oldest first. A torn last line (killed mid-write) is ignored."""
    runs: dict[str, PreviousRun] = {}
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "run" not in entry:
            continue
        rid = str(entry["run"])
        if entry.get("type") == "run":
            runs.setdefault(rid, PreviousRun(rid, str(entry.get("started", "")), str(entry.get("key", ""))))
        elif entry.get("type") == "case" and rid in runs:
            recs = runs[rid].records
            recs[:] = [r for r in recs if r.get("nodeid") != entry.get("nodeid")]
            recs.append(entry)
    return list(runs.values())


def last_run(path: Path, key: str) -> PreviousRun | None:
    """The most recent run with this key that finished at least one case."""
    for run in reversed(read_runs(path)):
        if run.key == key and run.records:
            return run
    return None


_RUN_FIELDS = ("type", "run", "key", "at", "carried_from")


class ProgressLog:
    """The progress of this run: what `--resume` carries over, and the appender for new verdicts."""

    def __init__(self, path: Path, key: str, *, previous: PreviousRun | None = None,
                 rerun: Iterable[str] = (), duts: Iterable[str] = (), secrets: Iterable[str] = ()):
        self.path = Path(path)
        self.key = key
        self.previous = previous
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + _secrets.token_hex(3)
        self.duts = list(duts)
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        rerun = set(rerun)
        self.carried: list[dict[str, Any]] = []
        for r in previous.records if previous else []:
            if r.get("case_id") in rerun:
                continue                  # asked for again by id: its new verdict replaces the old one
            rec = {k: v for k, v in r.items() if k not in _RUN_FIELDS}
            rec["carried_from"] = r.get("carried_from") or previous.run_id  # type: ignore[union-attr]
            self.carried.append(rec)
        self._opened = False

    def done(self) -> set[str]:
        """Node ids finished in the run being resumed."""
        return {str(r["nodeid"]) for r in self.carried if r.get("nodeid")}

    def record(self, record: dict[str, Any]) -> None:
        self._open()
        self._append({"type": "case", "run": self.run_id, "key": self.key, "at": _now(), **record})

    def close(self) -> None:
        """A resumed run that ran nothing new still becomes the latest run (with the carried verdicts)."""
        if self.carried:
            self._open()

    def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._end_torn_line()
        self._append({"type": "run", "run": self.run_id, "key": self.key, "started": _now(),
                      "resumed_from": self.previous.run_id if self.previous else None, "duts": self.duts})
        for rec in self.carried:
            self._append({"type": "case", "run": self.run_id, "key": self.key, **rec})

    def _end_torn_line(self) -> None:
        """A run killed mid-write leaves half a line: start ours on a fresh one."""
        try:
            with self.path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        except FileNotFoundError:
            return
        if torn:
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n")

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for s in self._secrets:           # nothing from a DUT profile's credentials lands under reports/
            line = line.replace(s, "***")
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def open_progress(path: Path, profiles: list[DutProfile], library_root: Path, *, fault: str | None,
                  resume: bool, rerun: Iterable[str] = ()) -> ProgressLog:
    key = run_key(profiles, library_root, fault)
    previous = last_run(path, key) if resume else None
    return ProgressLog(path, key, previous=previous, rerun=rerun, duts=[p.name for p in profiles],
                       secrets=[s for p in profiles for s in p.secrets()])
