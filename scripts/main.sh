#!/usr/bin/env bash
# Set up (once) and run the main job: the whole test library against the built-in
# simulators, writing Allure results, the certification summary and the HTML report
# under reports/. Extra arguments go to `charger-harness run`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/charger-harness ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
fi
if command -v npm >/dev/null 2>&1 && { [ ! -x node_modules/.bin/allure ] || [ ! -d node_modules/ocpp-rpc ]; }; then
  # The Allure 3 report CLI (no Java); optional: without it the run still writes results.
  npm install --no-audit --no-fund --loglevel=error || echo "npm install failed: HTML report will be skipped"
fi
exec .venv/bin/charger-harness run "$@"
