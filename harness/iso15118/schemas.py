"""Where the V2G XSDs come from (they are not committed: the iso15118 wheel ships them).

Lookup order:
1. ``CHARGER_HARNESS_V2G_SCHEMAS`` (a folder laid out like ``iso15118/shared/schemas``);
2. the user cache ``$XDG_CACHE_HOME/charger-harness/v2g-schemas/<version>`` (default
   ``~/.cache/...``), filled on first use by ``pip download iso15118==<version> --no-deps``
   and extracting ``iso15118/shared/schemas/**`` from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ISO15118_VERSION = "0.31.2"
ENV_VAR = "CHARGER_HARNESS_V2G_SCHEMAS"
_WHEEL_PREFIX = "iso15118/shared/schemas/"
_PIP_TIMEOUT_S = 300

# Entry XSD of each codec name (relative to the schemas folder).
ENTRY_FILES: dict[str, str] = {
    "app": "V2G_CI_AppProtocol.xsd",
    "din": "din_spec/V2G_CI_MsgDef.xsd",
    "iso2": "iso15118_2/V2G_CI_MsgDef.xsd",
    "iso20": "iso15118_20/V2G_CI_CommonMessages.xsd",
    "iso20_dc": "iso15118_20/V2G_CI_DC.xsd",
    "iso20_ac": "iso15118_20/V2G_CI_AC.xsd",
    "iso20_acdp": "iso15118_20/V2G_CI_ACDP.xsd",
    "iso20_wpt": "iso15118_20/V2G_CI_WPT.xsd",
    "xmldsig": "xmldsig-core-schema.xsd",  # SignedInfo fragments (what gets signed)
}


class SchemasUnavailable(RuntimeError):
    """The XSDs are neither configured, cached, nor downloadable."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "charger-harness" / "v2g-schemas" / ISO15118_VERSION


def schemas_dir(download: bool = True) -> Path:
    """The folder holding the XSDs; downloads them into the cache once if needed."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        folder = Path(configured)
        if not (folder / ENTRY_FILES["iso2"]).is_file():
            raise SchemasUnavailable(f"{ENV_VAR}={configured} does not hold {ENTRY_FILES['iso2']}")
        return folder
    folder = cache_dir()
    if _complete(folder):
        return folder
    if not download:
        raise SchemasUnavailable(f"V2G schemas not cached in {folder}")
    _fill_cache(folder)
    return folder


def schema_file(name: str, download: bool = True) -> Path:
    try:
        entry = ENTRY_FILES[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(ENTRY_FILES)}") from None
    return schemas_dir(download) / entry


def _complete(folder: Path) -> bool:
    return all((folder / entry).is_file() for entry in ENTRY_FILES.values()) and (
        folder / "xmldsig-core-schema.xsd"
    ).is_file()


def _fill_cache(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="v2g-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"iso15118=={ISO15118_VERSION}",
               "--no-deps", "--only-binary=:all:", "-d", tmp, "-q"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SchemasUnavailable(f"cannot run pip to fetch iso15118=={ISO15118_VERSION}: {exc}") from exc
        wheels = list(Path(tmp).glob("iso15118-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SchemasUnavailable(
                f"pip download iso15118=={ISO15118_VERSION} failed (set {ENV_VAR} to a schemas "
                f"folder to work offline): {proc.stderr.strip()[-500:]}")
        extract_schemas(wheels[0], folder)


def extract_schemas(wheel: Path, folder: Path) -> None:
    """Copy iso15118/shared/schemas/** out of a wheel into ``folder`` (atomically)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if not member.startswith(_WHEEL_PREFIX) or member.endswith("/"):
                    continue
                rel = member[len(_WHEEL_PREFIX):]
                if ".." in Path(rel).parts:
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
        if not _complete(staging):
            raise SchemasUnavailable(f"{wheel} does not hold the expected schemas")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":  # fill the cache once: python -m harness.iso15118.schemas
    print(schemas_dir())
