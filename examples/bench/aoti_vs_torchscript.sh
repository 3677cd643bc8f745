#!/usr/bin/env bash
# The "aoti" backend (AOTInductor packages) against "torchscript" on this machine's CPU, same run:
# the MLP and ResNet-18 called directly through each backend (actorserve-direct, no server) at
# several batch sizes, then the MLP served over HTTP/JSON with wrk at concurrency 1 and 64, the
# two backends alternating. Needs examples/models/make_models.py --aoti (ResNet-18's package
# compiles for minutes), wrk and the bench programs (scripts/build.sh).
# Usage: examples/bench/aoti_vs_torchscript.sh [SECONDS] [ROUNDS]   (defaults 5 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}; rounds=${2:-2}
for f in mlp.pt mlp.pt2 resnet18.pt resnet18.pt2; do
  [ -f "examples/models/$f" ] || { echo "needs examples/models/$f: examples/models/make_models.py --aoti"; exit 1; }
done
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk"; exit 1; }
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def model(name, backend, f, dims, out, batch):
    return {"name": name, "backend": backend, "path": os.path.abspath("examples/models/" + f),
            "max_batch_size": batch, "inputs": [{"name": "input", "datatype": "FP32", "dims": dims}],
            "outputs": [{"name": "logits", "datatype": "FP32", "dims": [out]}], "instances": 2,
            "batching": {"max_queue_delay_us": 0}, "warmup": {"batch_sizes": [1, batch]}}
for backend, ext in (("torchscript", "pt"), ("aoti", "pt2")):
    cfg = {"server": {"http": {"port": 18440}, "log_level": "warn"},
           "models": [model("mlp", backend, "mlp." + ext, [64], 10, 64),
                      model("resnet18", backend, "resnet18." + ext, [3, 224, 224], 1000, 16)]}
    json.dump(cfg, open(os.path.join(work, backend + ".json"), "w"))
PY
echo "== the models called directly (actorserve-direct), ${secs}s per point"
for round in $(seq "$rounds"); do
  for backend in torchscript aoti; do
    echo "-- $backend (round $round)"
    build/examples/bench/actorserve-direct "$work/$backend.json" mlp 1,16,64 "$secs"
    build/examples/bench/actorserve-direct "$work/$backend.json" resnet18 1,8,16 "$secs" | tail -n +2
  done
done
python3 -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[round(0.01*i,2) for i in range(64)]}]}))' > "$work/body.json"
echo "== the MLP over HTTP/JSON (wrk), ${secs}s per point"
for round in $(seq "$rounds"); do
  for backend in torchscript aoti; do
    build/app/actorserve serve --config "$work/$backend.json" >/dev/null 2>"$work/server.log" &
    server=$!
    until curl -sf localhost:18440/v2/health/ready >/dev/null; do
      kill -0 $server 2>/dev/null || { echo "the server exited:"; cat "$work/server.log"; exit 1; }
      sleep 0.05
    done
    for c in 1 64; do
      threads=$(( c < 2 ? 1 : 2 ))
      echo "backend=$backend round=$round c=$c $(BODY="$work/body.json" wrk -t$threads -c$c -d${secs}s \
        -s examples/bench/wrk_infer.lua http://127.0.0.1:18440/v2/models/mlp/infer | grep RESULT)"
    done
    kill $server; wait $server 2>/dev/null || true
    server=
  done
done
