#!/usr/bin/env bash
# Fault demo: three MLP workers serve a steady open-loop load (300 requests/s for 20 s) while
# the demo crashes, hangs, slows and breaks workers through POST /v2/admin/faults. At the end it
# prints what the load generator saw (errors by kind) and what the server counted (outcomes,
# retries, restarts, breaker transitions). Loopback only; the server stops at the end.
#   examples/faults/demo.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${1:-18300}
[ -x build/examples/bench/actorserve-loadgen ] || scripts/build.sh
[ -f examples/models/mlp.pt ] || .venv/bin/python examples/models/make_models.py --no-resnet
body=$(mktemp)
python3 -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[0.5]*64}]}))' > "$body"
build/app/actorserve serve --config examples/faults/faults.json --port $port 2>/tmp/faults-demo.log >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$body"' EXIT
until curl -sf localhost:$port/v2/health/ready >/dev/null; do sleep 0.05; done
arm() { curl -s -X POST localhost:$port/v2/admin/faults -d "$1"; echo; }
build/examples/bench/actorserve-loadgen --port $port --body "$body" --rate 300 --duration 20 --warmup 0 \
  --label faults-demo &
load=$!
sleep 2;  echo "crash mlp/cpu/0:";              arm '{"model":"mlp","worker":"mlp/cpu/0","fault":"crash"}'
sleep 3;  echo "hang mlp/cpu/1:";               arm '{"model":"mlp","worker":"mlp/cpu/1","fault":"hang"}'
sleep 3;  echo "slow mlp/cpu/2 (5 batches):";   arm '{"model":"mlp","worker":"mlp/cpu/2","fault":"slow","count":5}'
sleep 3;  echo "throw on a random worker, 4 batches at 50%:"; arm '{"model":"mlp","fault":"throw","count":4,"probability":0.5}'
sleep 3;  echo "crash mlp/cpu/0 again:";        arm '{"model":"mlp","worker":"mlp/cpu/0","fault":"crash"}'
wait $load
echo
echo "== what the server counted"
curl -s localhost:$port/metrics | grep -E '^actorserve_(requests_total|retries_total|worker_restarts_total|breaker_transitions_total)' | grep -v ' 0$'
