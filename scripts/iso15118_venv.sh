#!/usr/bin/env bash
# Create (once) the separate virtual environment that holds the reference ISO 15118 stack
# (PyPI "iso15118"). It pins cryptography/pydantic versions that clash with the harness's
# own .venv, so it must never be installed there. Idempotent: a second run only checks.
# Java is NOT needed to install; it is needed at run time by the package's EXI codec
# (EXICodec.jar, Java 17+), and the harness skips with a reason when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ISO15118_VENV:-.venv-iso15118}"
VERSION="0.31.2"
# The package's EVCC imports aiofile without declaring it (SECC and EXI codec do not need it).
EXTRA="aiofile>=3.8,<4"
PYTHON="${ISO15118_PYTHON:-python3}"

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("iso15118"))' 2>/dev/null || true
}

if [ -x "$VENV/bin/python" ] && [ "$(installed_version)" = "$VERSION" ] \
   && "$VENV/bin/python" -c 'import aiofile' 2>/dev/null; then
  echo "iso15118 $VERSION already in $VENV"
else
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "iso15118==$VERSION" "$EXTRA"
  echo "iso15118 $(installed_version) installed in $VENV"
fi

if ! command -v java >/dev/null 2>&1; then
  echo "note: no java on PATH: the reference EXI codec (Java 17) will be unavailable; its tests skip"
fi
