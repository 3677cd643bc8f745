#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing, builds, runs each
# libFuzzer harness for FUZZ_SECONDS (default 30; 0 skips them) under ASan and UBSan, then every
# ctest label (unit, integration, chaos, cluster, soak; gpu tests skip where no GPU exists), whose
# summary closes the output. Extra arguments go to ctest.
#
# The tests run on a build with AddressSanitizer and UBSan (ACTORSERVE_SANITIZE, in
# build-sanitize/, at -O1): the test programs and every actorserve process they start, isolated
# worker processes included. Those write any report (a memory error, undefined behaviour, a leak at
# exit) into build-sanitize/sanitizer-reports/, which the last test (sanitizer_reports) checks:
# one report fails the run even where the test that caused it passed. SANITIZE=0 runs the tests on
# the normal build (build/) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "${SANITIZE:-1}" != 0 ]; then
  dir=build-sanitize
  # (clang: its UBSan writes reports where log_path says; nvcc keeps g++ as its host compiler.)
  CC=clang CXX=clang++ BUILD_DIR=$dir scripts/build.sh -DACTORSERVE_SANITIZE=ON \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DCMAKE_CUDA_HOST_COMPILER=g++
else
  dir=build
  scripts/build.sh
fi
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
if [ "$dir" = build-sanitize ]; then
  # (protect_shadow_gap=0: the CUDA driver maps memory where ASan guards by default.)
  reports="$PWD/$dir/sanitizer-reports"
  gap=""; command -v nvidia-smi >/dev/null && gap=":protect_shadow_gap=0"
  export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1$gap"
  export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:suppressions=$PWD/tests/sanitizer/ubsan.supp"
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0"
fi
cd "$dir"
ctest --output-on-failure --timeout 300 "$@"
