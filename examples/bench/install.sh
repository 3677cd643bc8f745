#!/usr/bin/env bash
# What the benchmarks need beyond the project's own install: wrk and heaptrack (Debian), Ray Serve,
# LitServe, aiohttp, matplotlib (for the optional plot), in the project's venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh
command -v wrk >/dev/null && command -v heaptrack >/dev/null \
  || { SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk heaptrack; }
.venv/bin/python -c 'import ray.serve, aiohttp, matplotlib' 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "ray[serve]" aiohttp matplotlib
.venv/bin/python -c "import litserve" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check "litserve==0.2.19"
