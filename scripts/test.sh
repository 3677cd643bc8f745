#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing, builds, runs every ctest
# label (unit, integration, chaos, cluster; gpu tests skip where no GPU exists). Extra arguments go to
# ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 300 "$@"
