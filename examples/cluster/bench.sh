#!/usr/bin/env bash
# What a remote worker costs and what a second worker node brings, on loopback: the MLP served by
# one node with a local worker, then by a front with one and with two worker nodes (one worker
# each, one libtorch thread each). Closed loop with actorserve-loadgen; prints one table per run.
#   examples/cluster/bench.sh [SECONDS=5]
set -euo pipefail
cd "$(dirname "$0")"
root=../..; bin=$root/build/app/actorserve; lg=$root/build/examples/bench/actorserve-loadgen
secs=${1:-5}; logs=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
body='{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['$(seq -s, 1 64 | sed 's/[0-9]\+/0.5/g')']}]}'
printf '%s' "$body" >"$logs/body.json"
ready() { for _ in $(seq 100); do curl -sf -o /dev/null localhost:8000/v2/models/mlp/ready && return 0; sleep 0.1; done; return 1; }
load() { "$lg" --port 8000 --path /v2/models/mlp/infer --body "$logs/body.json" --concurrency "$2" \
           --duration "$secs" --warmup 1 --label "$1" 2>/dev/null | tail -1; }
# One node, local worker: the front's file with role "both" and a local worker.
python3 - "$logs" <<'PY'
import json, sys
c = json.load(open("front.json")); c["server"].pop("cluster")
c["models"][0]["path"] = "../../examples/models/mlp.pt"; c["models"][0]["parameters"] = {"intra_op_threads": 1}
json.dump(c, open(sys.argv[1] + "/local.json", "w"))
PY
cp "$logs/local.json" ./.local-bench.json
"$bin" serve --config .local-bench.json >"$logs/local.log" 2>&1 & pids+=($!); ready
echo "label          mode            load      req/s    p50_us    p90_us    p99_us    max_us  errors"
load local 1; load local 64
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; rm -f .local-bench.json
"$bin" serve --config front.json >"$logs/front.log" 2>&1 & pids+=($!)
sleep 0.5; "$bin" serve --config worker1.json >"$logs/w1.log" 2>&1 & pids+=($!); ready; sleep 0.3
load remote-1node 1; load remote-1node 64
"$bin" serve --config worker2.json >"$logs/w2.log" 2>&1 & pids+=($!); sleep 1.5
load remote-2nodes 64
