#!/usr/bin/env bash
# Heap allocations per request on the serving path, counted by heaptrack (Debian package): the
# node runs once with no load and once under wrk (concurrency CONC for SECONDS), each from start
# to a clean stop, and the difference in heaptrack's "calls to allocation functions" is divided by
# the requests answered. Start-up (model load, warm-up) counts in both runs alike and drops out;
# libtorch's own allocations per forward call count too (amortized over the batch that forms).
#
#   examples/bench/allocs_per_request.sh [BINARY=build/app/actorserve] [CONC=8] [SECONDS=4]
# The quickstart MLP over HTTP/JSON; loopback only; stops only the node it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/app/actorserve}; conc=${2:-8}; secs=${3:-4}
command -v heaptrack >/dev/null && command -v wrk >/dev/null \
  || { echo "needs heaptrack and wrk: apt-get install heaptrack wrk"; exit 1; }
# A program linked with mimalloc (the default build) allocates through mimalloc's operator new,
# which heaptrack does not intercept: count with a build of the system allocator.
if ldd "$bin" | grep -q mimalloc; then
  echo "$bin uses mimalloc, whose operator new heaptrack does not see; count with a build of the"
  echo "system allocator: cmake -B build-sysalloc -DACTORSERVE_ALLOCATOR=system <your other options>"
  echo "&& cmake --build build-sysalloc --target actorserve, then pass build-sysalloc/app/actorserve"
  exit 1
fi
out=$(mktemp -d); port=18127
trap 'rm -rf "$out"' EXIT
python3 -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[round(0.01*i,2) for i in range(64)]}]}))' > "$out/body"
one() { # SECONDS of load (0: none) -> "CALLS REQUESTS"
  heaptrack -o "$out/run-$1" "$bin" serve --config config/single-node.json --port $port \
    --address 127.0.0.1 >/dev/null 2>&1 &
  local wrapper=$!
  until curl -sf localhost:$port/v2/health/ready >/dev/null; do
    kill -0 $wrapper 2>/dev/null || { echo "the node did not start" >&2; exit 1; }
    sleep 0.1
  done
  local n=0
  if [ "$1" != 0 ]; then
    n=$(BODY="$out/body" wrk -t1 -c"$conc" -d"$1"s -s examples/bench/wrk_infer.lua \
          http://127.0.0.1:$port/v2/models/mlp/infer | awk '/requests in/ {print $1}')
  fi
  local node; node=$(pgrep -P $wrapper -f "serve --config" | head -1) # (heaptrack's child)
  kill -INT "$node"; wait $wrapper || true
  echo "$(heaptrack_print -f "$out"/run-"$1".* 2>/dev/null \
            | awk '/^calls to allocation functions:/ {print $5}') $n"
}
read -r idle _ < <(one 0)
read -r loaded requests < <(one "$secs")
echo "start and stop alone: $idle allocation calls; with load: $loaded, $requests requests"
echo "allocations per request: $(( (loaded - idle) / requests ))"
