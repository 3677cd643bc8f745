#!/usr/bin/env bash
# A quick HTTP measurement of one running deployment with wrk (Debian package): time from process
# start to ready, then requests/s, latency percentiles and the batch sizes formed at each
# concurrency. Usage: examples/bench/http_quick.sh [CONFIG] [MODEL] [SECONDS] [CONCURRENCIES...]
# Defaults: config/single-node.json mlp 10 "1 64". Loopback only; stops the server at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-config/single-node.json}; model=${2:-mlp}; secs=${3:-10}; shift $(( $# < 3 ? $# : 3 ))
concurrencies=${*:-"1 64"}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk"; exit 1; }
port=18123
body=$(mktemp)
case $model in
  mlp) python3 -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[round(0.01*i,2) for i in range(64)]}]}))' > "$body";;
  *) echo "no request body for model $model"; exit 1;;
esac
start=$(date +%s%N)
build/app/actorserve serve --config "$config" --port $port --address 127.0.0.1 2>/tmp/http_quick.log >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$body"' EXIT
until curl -sf localhost:$port/v2/health/ready >/dev/null; do
  kill -0 $server 2>/dev/null || { echo "the server exited:"; cat /tmp/http_quick.log; exit 1; }
  sleep 0.005
done
ready=$(date +%s%N)
echo "start_to_ready_ms=$(( (ready - start) / 1000000 ))"
for c in $concurrencies; do
  threads=$(( c < 2 ? 1 : 2 ))
  echo "== concurrency $c, ${secs}s"
  BODY=$body wrk -t$threads -c$c -d${secs}s -s examples/bench/wrk_infer.lua http://127.0.0.1:$port/v2/models/$model/infer | grep -E "RESULT|BATCHES"
done
