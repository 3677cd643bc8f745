#!/usr/bin/env bash
# The event-queue ingress measured end to end on loopback: a redis-server (no persistence), a node
# serving the quickstart's MLP from stream "jobs", and examples/queue/queue_bench.py against it:
# a backlog of 50,000 entries added before the node starts (the node's own rate), then
# closed-loop clients at each concurrency. For comparison, the same model
# over HTTP: examples/bench/http_quick.sh. Usage: examples/queue/bench.sh [SECONDS] [CONCURRENCIES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; shift $(( $# < 1 ? $# : 1 ))
concurrencies=${*:-"1 64"}
command -v redis-server >/dev/null || { echo "needs redis-server: scripts/install-deps.sh"; exit 1; }
[ -f examples/models/mlp.pt ] || .venv/bin/python examples/models/make_models.py --out examples/models --no-resnet
redis_port=16390
http_port=18124
work=$(mktemp -d)
redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
redis=$!
python3 - "$work/queue.json" $redis_port <<'PY'
import json, os, sys
cfg = json.load(open("config/single-node.json"))
cfg["models"] = [m for m in cfg["models"] if m["name"] == "mlp"]
cfg["models"][0]["path"] = os.path.abspath("examples/models/mlp.pt")
cfg["server"]["queues"] = [{"stream": "jobs", "model": "mlp", "redis": {"port": int(sys.argv[2])},
                            "max_in_flight": 512}]
json.dump(cfg, open(sys.argv[1], "w"))
PY
until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.05; done
.venv/bin/python examples/queue/queue_bench.py --port $redis_port --mode fill --count 50000
build/app/actorserve serve --config "$work/queue.json" --port $http_port 2>"$work/node.log" >/dev/null &
node=$!
trap 'kill $node $redis 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -sf localhost:$http_port/v2/health/ready >/dev/null; do
  kill -0 $node 2>/dev/null || { echo "the node exited:"; cat "$work/node.log"; exit 1; }
  sleep 0.01
done
.venv/bin/python examples/queue/queue_bench.py --port $redis_port --mode drain --count 50000
for c in $concurrencies; do
  .venv/bin/python examples/queue/queue_bench.py --port $redis_port --mode closed --concurrency "$c" --seconds "$secs"
done
curl -s localhost:$http_port/metrics | grep -E '^actorserve_queue_(answers_total|entries_read_total|redis_errors_total)'
