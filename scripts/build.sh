#!/usr/bin/env bash
# Configures and builds actorserve into build/ (RelWithDebInfo, ccache when present). BUILD_DIR
# names another folder; extra arguments go to cmake's configure step (scripts/test.sh builds
# build-sanitize/ with -DACTORSERVE_SANITIZE=ON this way).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
dir=${BUILD_DIR:-build}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$dir" -j"$jobs"
