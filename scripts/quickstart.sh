#!/usr/bin/env bash
# From a fresh Debian machine to a served model: installs, builds, makes the example models,
# starts `actorserve serve --config config/single-node.json`, sends one inference request and
# prints the answer. The server then keeps running until Ctrl-C (--no-wait stops it instead).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
.venv/bin/python examples/models/make_models.py
build/app/actorserve check-config config/single-node.json

build/app/actorserve serve --config config/single-node.json &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  curl -sf localhost:8000/v2/health/ready >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "quickstart: the server exited"; exit 1; }
  sleep 0.1
done
echo
echo "== GET /v2/models/mlp"
curl -s localhost:8000/v2/models/mlp; echo
echo "== POST /v2/models/mlp/infer (one row of 64 floats)"
body='{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
body+=$(seq -s, 0.01 0.01 0.64)
body+=']}]}'
curl -s -X POST localhost:8000/v2/models/mlp/infer -H 'Content-Type: application/json' -d "$body"; echo
echo
if [ "${1:-}" = "--no-wait" ]; then
  exit 0
fi
echo "actorserve is serving on http://127.0.0.1:8000 (KServe v2). Ctrl-C stops it."
trap - EXIT
wait $server
