#!/usr/bin/env bash
# Configures and builds actorserve into build/ (RelWithDebInfo, ccache when present).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} >/dev/null
cmake --build build -j"$jobs"
