#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang, AddressSanitizer and UBSan into
# build-fuzz/, and runs each for SECONDS (default 30) from its seed corpus (tests/fuzz/corpus/NAME,
# copied: what the run adds stays in build-fuzz/corpus/NAME). A crash fails the script; its input is
# kept as build-fuzz/crash-* to turn into a regression test. Prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
jobs=${JOBS:-$(nproc)}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DACTORSERVE_FUZZ=ON -DACTORSERVE_WITH_TORCH=OFF -DACTORSERVE_WITH_CUDA=OFF \
  -DACTORSERVE_WITH_GRPC=OFF -DACTORSERVE_WITH_QUEUES=OFF -DACTORSERVE_BUILD_TESTS=OFF >/dev/null
targets=(http_request kserve_request grpc_request content_coding deployment queue_entry image_decode)
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  cp -n tests/fuzz/corpus/$t/* "build-fuzz/corpus/$t/" 2>/dev/null || true
  log="build-fuzz/fuzz_$t.log"
  if ! build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
       -artifact_prefix="build-fuzz/crash-$t-" "build-fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (input kept as build-fuzz/crash-$t-*)"
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz: $t ok, ${runs:-? runs} in ${seconds} s, $cov, corpus $(ls "build-fuzz/corpus/$t" | wc -l) inputs"
done
