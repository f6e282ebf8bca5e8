#!/usr/bin/env bash
# Install (from uv.lock), then check the lock, audit the dependencies, lint, type-check and
# test: what CI runs, unchanged.
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-all,bench}" bash scripts/install.sh
. .venv/bin/activate
echo "== uv lock --locked (uv.lock matches pyproject.toml)"; uv lock --locked
echo "== audit"; python scripts/audit.py
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
