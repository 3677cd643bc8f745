#!/usr/bin/env bash
# A three-node cluster on this machine, as a user would try it: one front node (HTTP on :8000,
# worker nodes join on 127.0.0.1:7070) and two worker nodes serving the MLP. It sends requests,
# shows which node answered each, SIGKILLs worker1 under load (nothing is lost: its requests are
# retried on worker2), restarts it (it rejoins by itself) and stops everything.
#   examples/cluster/run.sh            (after scripts/build.sh; makes the example models if needed)
set -euo pipefail
cd "$(dirname "$0")"
root=../..
bin=$root/build/app/actorserve
[ -x "$bin" ] || (cd $root && scripts/build.sh)
[ -f ../models/mlp.pt ] || $root/.venv/bin/python ../models/make_models.py --no-resnet
logs=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() { "$bin" serve --config "$1.json" >"$logs/$1.log" 2>&1 & pids+=($!); eval "pid_$1=$!"; }
body='{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['$(seq -s, 1 64 | sed 's/[0-9]\+/0.5/g')']}]}'
ask() { curl -s -X POST localhost:8000/v2/models/mlp/infer -d "$body" | grep -o '"worker":"[^"]*"' || echo "(no answer)"; }
ready() { for _ in $(seq 100); do curl -sf -o /dev/null localhost:8000/v2/models/mlp/ready && return 0; sleep 0.1; done; return 1; }

start front; sleep 0.5; start worker1; start worker2
ready; sleep 0.5
echo "== four requests, answered by the two worker nodes in turn"
for _ in 1 2 3 4; do ask; done
echo "== 3 s of load (16 connections); worker1 is SIGKILLed after 1 s"
loadgen=$root/build/examples/bench/actorserve-loadgen
printf '%s' "$body" >"$logs/body.json"
"$loadgen" --port 8000 --path /v2/models/mlp/infer --body "$logs/body.json" --concurrency 16 \
  --duration 3 --warmup 0 2>/dev/null & lg=$!
sleep 1; kill -9 "$pid_worker1"; wait "$lg"
echo "== worker1 restarts and rejoins"
start worker1; sleep 1.5
for _ in 1 2 3 4; do ask; done
echo "== the front's view"
grep -E "is ready|is down|left" "$logs/front.log" | tail -5
echo "requests retried on worker2 after worker1 was killed: $(grep -c retrying "$logs/front.log" || true)"
echo "(logs in $logs)"
