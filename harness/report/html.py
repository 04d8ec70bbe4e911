"""Render an Allure results directory into one self-contained HTML file.

Uses the Allure 3 CLI from npm (`allure` in the repo's package.json; `npm install` in the
repo root puts it in node_modules/). Allure 3 is Node only, so no Java is needed, and its
"awesome" report in single-file mode inlines scripts, styles and data: the file opens from
disk, can be mailed or archived next to the certification summary.

No network: the CLI is run with a generated config (no upload service, no history service,
no "open in browser"), in a scratch working directory so a stray allurerc in the caller's
directory cannot add plugins, and the Google Analytics tag that the awesome template always
emits is removed from the output (the allure2 template honours ALLURE_NO_ANALYTICS, which
is set as well).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.report.allure_writer import CATEGORIES, CATEGORIES_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
HINT = "run `npm install` in the repo root to get the allure CLI (Node ≥ 18)"
DEFAULT_TIMEOUT = 300.0

# The analytics snippet of the awesome/classic/dashboard templates: an external gtag.js
# loader followed by its inline config script.
_ANALYTICS = re.compile(
    r"<script[^>]*src=\"https://www\.googletagmanager\.com/[^\"]*\"[^>]*>\s*</script>\s*"
    r"(<script>\s*window\.dataLayer[\s\S]*?</script>)?")
_EXTERNAL_REF = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["']https?://""", re.I)


class AllureUnavailable(RuntimeError):
    """The allure CLI is missing, too old, or failed to render."""


def find_allure_cli() -> list[str] | None:
    """The command that runs the Allure 3 CLI: the repo's node_modules first, then PATH."""
    node = shutil.which("node")
    local = REPO_ROOT / "node_modules" / "allure" / "cli.js"
    if node and local.is_file() and (_major_version([node]) or 0) >= 18:
        # Call node directly: the .bin shim relies on `/usr/bin/env node` and on execute bits.
        return [node, str(local)]
    on_path = shutil.which("allure")
    if on_path and _major_version([on_path]) == 3:   # Allure 2 (Java) has another CLI
        return [on_path]
    return None


def _major_version(cmd: list[str]) -> int | None:
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30,
                             env=_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)\.\d+", out)   # "3.18.0", "v20.20.2"
    return int(m.group(1)) if m else None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Allure Service uploads are configured only in the allurerc, which we generate without one.
    env.update(ALLURE_NO_ANALYTICS="true", NO_COLOR="1", FORCE_COLOR="0")
    return env


def render_html(results_dir: Path, out_dir: Path, *, single_file: bool = True, name: str = "charger-harness",
                history: Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Render `results_dir` into `out_dir` and return the report's index.html.

    `history` is an optional JSONL file in which Allure 3 keeps run history; pass the same
    file on every run against a DUT to get trends. Raises `AllureUnavailable` when the CLI
    is missing or fails.
    """
    results_dir, out_dir = Path(results_dir).resolve(), Path(out_dir).resolve()
    if not results_dir.is_dir():
        raise AllureUnavailable(f"no Allure results directory at {results_dir}")
    cli = find_allure_cli()
    if cli is None:
        raise AllureUnavailable(f"the Allure 3 CLI was not found: {HINT}")

    config = {
        "name": name,
        "output": str(out_dir),
        "open": False,
        "plugins": {"awesome": {"options": {
            "reportName": name, "singleFile": single_file,
            "groupBy": ["parentSuite", "suite", "subSuite"],
        }}},
        "categories": _categories(results_dir),
    }
    if history is not None:
        config["historyPath"] = str(Path(history).resolve())

    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.unlink(missing_ok=True)   # never hand back a previous run's report
    with tempfile.TemporaryDirectory(prefix="allure-cwd-") as scratch:
        rc = Path(scratch) / "allurerc.json"
        rc.write_text(json.dumps(config), "utf-8")
        cmd = [*cli, "generate", "--config", str(rc), "--cwd", scratch, "--output", str(out_dir),
               "--report-name", name, str(results_dir)]
        try:
            proc = subprocess.run(cmd, cwd=scratch, env=_env(), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError as exc:
            raise AllureUnavailable(f"cannot run {cli[0]}: {exc}; {HINT}") from None
        except subprocess.TimeoutExpired:
            raise AllureUnavailable(f"allure generate did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0 or not index.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise AllureUnavailable(f"allure generate failed (exit {proc.returncode}):\n{tail}")
    _strip_analytics(index)
    return index


def _categories(results_dir: Path) -> list[dict]:
    """The results' own categories.json if present (the awesome report reads categories
    from its config, not from the results), else the harness defaults."""
    path = results_dir / CATEGORIES_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text("utf-8"))
            if isinstance(data, list):
                return data
        except (OSError, ValueError):
            pass
    return CATEGORIES


def _strip_analytics(index: Path) -> None:
    html = index.read_text("utf-8")
    cleaned = _ANALYTICS.sub("", html)
    if cleaned != html:
        index.write_text(cleaned, "utf-8")


def external_references(index: Path) -> list[str]:
    """Tags in the report that would load something from the network (should be none)."""
    html = Path(index).read_text("utf-8")
    return [html[m.start():m.start() + 160] for m in _EXTERNAL_REF.finditer(html)]


# How the single-file awesome report embeds its data: d("<path>","<base64>") calls.
_EMBEDDED = re.compile(r'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)')


def embedded_files(index: Path) -> dict[str, bytes]:
    """The data files a single-file report carries inside it (attachments, test results,
    widgets), decoded. For checks such as "no secret anywhere in the report"."""
    html = Path(index).read_text("utf-8")
    return {m.group(1): base64.b64decode(m.group(2)) for m in _EMBEDDED.finditer(html)}
