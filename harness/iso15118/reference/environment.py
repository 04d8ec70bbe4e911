"""Where the separate iso15118 venv lives and whether it (and Java) can be used here."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGE_VERSION = "0.31.2"
SETUP_HINT = "run scripts/iso15118_venv.sh"


def venv_dir() -> Path:
    """ISO15118_VENV if set (relative paths are from the repository root), else .venv-iso15118."""
    configured = os.environ.get("ISO15118_VENV", ".venv-iso15118")
    path = Path(configured)
    return path if path.is_absolute() else REPO_ROOT / path


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def package_dir() -> Path | None:
    """The installed iso15118 package folder inside the venv, if any."""
    for candidate in sorted((venv_dir() / "lib").glob("python3*/site-packages/iso15118")):
        if (candidate / "shared" / "EXICodec.jar").is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def _java_major(java: str) -> int | None:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


# The jar's JVM is short-lived and busy from its first message: C1-only JIT and the serial GC
# halve its per-message cost on a small machine (they change nothing it encodes).
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def java_env(env: dict[str, str]) -> dict[str, str]:
    """env plus JAVA_TOOL_OPTIONS for the codec's JVM (an explicit setting wins)."""
    if "JAVA_TOOL_OPTIONS" not in env:
        env = {**env, "JAVA_TOOL_OPTIONS": JAVA_OPTIONS}
    return env


def missing_reason(need_java: bool = True) -> str | None:
    """None when the reference stack can run; otherwise a one-line reason with the fix."""
    if not venv_python().exists():
        return f"no iso15118 venv at {venv_dir()} ({SETUP_HINT})"
    if package_dir() is None:
        return f"iso15118 {PACKAGE_VERSION} is not installed in {venv_dir()} ({SETUP_HINT})"
    if need_java:
        java = shutil.which("java")
        if java is None:
            return "no java on PATH: the reference EXI codec needs Java 17 (Debian: openjdk-17-jre-headless)"
        major = _java_major(java)
        if major is None or major < 17:
            return f"java at {java} is version {major}, the reference EXI codec needs 17 or newer"
    return None
