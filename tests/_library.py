"""Shared by the end-to-end tests: a small copy of the test library and the CLI as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "harness.cli"]


def make_library(tmp: Path, *names: str) -> Path:
    lib = tmp / "testcases"
    shutil.copytree(ROOT / "testcases" / "_common", lib / "_common")
    for name in names:
        src = next((ROOT / "testcases").rglob(f"{name}.yaml"))
        dst = lib / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return lib


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
