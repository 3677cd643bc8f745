#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing, builds, runs each
# libFuzzer harness for FUZZ_SECONDS (default 30; 0 skips them) under ASan and UBSan, then every
# ctest label (unit, integration, chaos, cluster, soak; gpu tests skip where no GPU exists), whose
# summary closes the output. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
cd build
ctest --output-on-failure --timeout 300 "$@"
