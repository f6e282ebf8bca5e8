#!/usr/bin/env bash
# Install, then lint, type-check and test: what CI runs, unchanged.
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-all,bench}" bash scripts/install.sh
. .venv/bin/activate
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
