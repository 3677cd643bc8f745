#!/usr/bin/env bash
# One run, side by side on the same machine and model: actorserve, Ray Serve (@serve.batch), a
# Python asyncio+aiohttp dynamic-batching server, the model called directly from C++ (the ceiling)
# and a bare Beast server answering a fixed body (the HTTP ceiling). Closed-loop sweeps with
# actorserve-loadgen; prints the table and the ratios; writes bench-results/ (JSONL, CSV, PNG).
#
#   examples/bench/compare.sh [MODELS="mlp resnet18"] [CONCURRENCY="1 16 64"] [SECONDS=8]
# Environment: SKIP_RAY=1 leaves Ray Serve out. Loopback only; every server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${1:-"mlp resnet18"}; conc=${2:-"1 16 64"}; secs=${3:-8}; warm=2
out=bench-results; mkdir -p $out; rm -f $out/results.jsonl $out/results.csv $out/direct.txt
py=.venv/bin/python
[ -x build/examples/bench/actorserve-loadgen ] || scripts/build.sh
[ -f examples/models/mlp.pt ] && [ -f examples/models/resnet18.pt ] || $py examples/models/make_models.py
lg=build/examples/bench/actorserve-loadgen
pids=()
ray_group=""
# The Ray app leads a process group of its own (setsid): SIGTERM lets it shut down the Serve
# application and the Ray cluster it started; what is left of the group after 10 s is killed.
# Nothing else of the user's is touched (no pkill, no `ray stop`).
stop_ray() {
  [ -n "$ray_group" ] || return 0
  kill -TERM -- "-$ray_group" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$ray_group" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$ray_group" 2>/dev/null || true
  ray_group=""
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; stop_ray; }
trap cleanup EXIT
wait_ready() { # URL PID
  for _ in $(seq 1200); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "server exited"; return 1; }
    sleep 0.1
  done; return 1
}
sweep() { # LABEL PORT PATH BODY [JSONLEN]
  local extra=(); [ -n "${5:-}" ] && extra=(--json-length "$5")
  $lg --port "$2" --path "$3" --body "$4" "${extra[@]}" --concurrency "$(echo $conc | tr ' ' ,)" \
      --duration "$secs" --warmup $warm --label "$1" --json $out/results.jsonl --csv $out/results.csv
}
for model in $models; do
  case $model in
    mlp) out_name=logits; max_batch=64; window=0; instances=2; threads=1
         $py -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[round(0.01*i,2) for i in range(64)]}]}))' > $out/body-mlp
         jl="";;
    resnet18) out_name=logits; max_batch=16; window=2000; instances=1; threads=2
         $py - <<'PY'
import json, numpy as np
h = json.dumps({"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":3*224*224*4}}]}).encode()
open("bench-results/body-resnet18","wb").write(h + np.random.default_rng(0).standard_normal((1,3,224,224), dtype=np.float32).tobytes())
open("bench-results/body-resnet18.len","w").write(str(len(h)))
PY
         jl=$(cat $out/body-resnet18.len);;
    *) echo "unknown model $model"; exit 1;;
  esac
  path=/v2/models/$model/infer; body=$out/body-$model
  echo "=== $model: direct model (C++, same backend)"
  sizes=$(for c in $conc; do echo $(( c < max_batch ? c : max_batch )); done | tr '\n' , | sed 's/,$//')
  build/examples/bench/actorserve-direct config/single-node.json $model "$sizes" 3 | tee -a $out/direct.txt
  echo "=== $model: actorserve"
  build/app/actorserve serve --config config/single-node.json --port 18200 2>$out/actorserve.log >/dev/null & pids+=($!)
  wait_ready http://127.0.0.1:18200/v2/health/ready $!
  sweep actorserve:$model 18200 $path $body $jl
  kill ${pids[-1]}; wait ${pids[-1]} 2>/dev/null || true
  echo "=== $model: python asyncio + aiohttp"
  (cd examples/bench/peers && exec ../../../$py asyncio_server.py 18201 ../../models/$model.pt $model $out_name $max_batch $window $instances $threads) 2>$out/python.log & pids+=($!)
  wait_ready http://127.0.0.1:18201/v2/health/ready $!
  sweep python:$model 18201 $path $body $jl
  kill ${pids[-1]}; wait ${pids[-1]} 2>/dev/null || true
  if [ -z "${SKIP_RAY:-}" ]; then
    echo "=== $model: Ray Serve"
    (cd examples/bench/peers && exec setsid ../../../$py ray_serve_app.py 18202 ../../models/$model.pt $model $out_name $max_batch $window $instances $threads) >$out/ray.log 2>&1 &
    ray_group=$!
    for _ in $(seq 1200); do grep -q "ray-serve: ready" $out/ray.log && break; sleep 0.1; done
    sweep ray:$model 18202 $path $body $jl
    stop_ray
  fi
done
echo "=== bare HTTP (fixed answer; MLP-sized request)"
build/examples/bench/actorserve-bare-http 18203 2 >/dev/null & pids+=($!)
sleep 0.5
sweep bare:http 18203 /v2/models/mlp/infer $out/body-mlp
kill ${pids[-1]} 2>/dev/null || true
$py examples/bench/ratios.py $out
