#!/usr/bin/env bash
# One run, side by side on the same machine and model: actorserve, Ray Serve (@serve.batch),
# LitServe (its own batching; JSON requests only, so the MLP), a Python asyncio+aiohttp
# dynamic-batching server, the model called directly from C++ (the ceiling), a bare Beast server
# answering a fixed body (the HTTP ceiling) and a bare gRPC server (the gRPC ceiling). Two HTTP
# clients load every server: actorserve-loadgen and wrk (so no figure depends only on the
# project's own client); gRPC is loaded by examples/bench/grpc_bench.py (Python: on a small machine
# it is the limit, against the bare server too). Prints the tables, the ratios and the per-request
# cost targets (added microseconds at concurrency 1, share of the bare server at the highest
# concurrency); writes bench-results/ (JSONL, CSV, PNG).
#
#   examples/bench/compare.sh [MODELS="mlp resnet18"] [CONCURRENCY="1 16 64"] [SECONDS=8]
# Environment: SKIP_RAY=1 / SKIP_LITSERVE=1 / SKIP_GRPC=1 leave those out (a peer whose package
# is not installed is left out with a line saying so). Loopback only; every server this script
# started is stopped at the end, by its process id or process group, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${1:-"mlp resnet18"}; conc=${2:-"1 16 64"}; secs=${3:-8}; warm=2
out=bench-results; mkdir -p $out; rm -f $out/results.jsonl $out/results.csv $out/direct.txt
py=.venv/bin/python
[ -x build/examples/bench/actorserve-loadgen ] || scripts/build.sh
[ -f examples/models/mlp.pt ] && [ -f examples/models/resnet18.pt ] || $py examples/models/make_models.py
lg=build/examples/bench/actorserve-loadgen
pids=()
group=""
# Ray Serve and LitServe lead a process group of their own (setsid): SIGTERM lets them shut down
# what they started (the Serve application and Ray cluster; LitServe's worker processes); what is
# left of the group after 10 s is killed. Nothing else of the user's is touched (no pkill, no
# `ray stop`).
stop_group() {
  [ -n "$group" ] || return 0
  kill -TERM -- "-$group" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$group" 2>/dev/null || true
  group=""
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; stop_group; }
trap cleanup EXIT
wait_ready() { # URL PID
  for _ in $(seq 1200); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "server exited"; return 1; }
    sleep 0.1
  done; return 1
}
sweep() { # LABEL PORT PATH BODY [JSONLEN]: both clients, one after the other
  local extra=(); [ -n "${5:-}" ] && extra=(--json-length "$5")
  $lg --port "$2" --path "$3" --body "$4" "${extra[@]}" --concurrency "$(echo $conc | tr ' ' ,)" \
      --duration "$secs" --warmup $warm --label "$1" --json $out/results.jsonl --csv $out/results.csv
  $py examples/bench/wrk_sweep.py "wrk/$1" "$2" "$3" "$4" "$(echo $conc | tr ' ' ,)" "$secs" \
      $out/results.jsonl "${5:-}"
}
grpc_sweep() { # LABEL HOST:PORT
  for c in $conc; do
    $py examples/bench/grpc_bench.py "$2" --concurrency "$c" --seconds "$secs" --label "$1" \
        --json $out/results.jsonl
  done
}
# A peer that leads a process group of its own: started, swept once it prints READY, stopped.
group_peer() { # TITLE SCRIPT PORT READY LABEL (uses the model loop's variables)
  echo "=== $model: $1"
  (cd examples/bench/peers && exec setsid ../../../$py $2 $3 ../../models/$model.pt $model $out_name \
     $max_batch $window $instances $threads) >$out/$5.log 2>&1 &
  group=$!
  for _ in $(seq 1200); do grep -q "$4" $out/$5.log && break; sleep 0.1; done
  sweep $5:$model $3 $path $body $jl
  stop_group
}
has() { $py -c "import $1" 2>/dev/null || { echo "=== (left out: python package $1 is not installed)"; return 1; }; }
[ -n "${SKIP_GRPC:-}" ] || [ -x build/examples/bench/actorserve-bare-grpc ] \
  || { echo "=== (gRPC left out: this build has no gRPC front)"; SKIP_GRPC=1; }
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
  grpc_args=(); [ -z "${SKIP_GRPC:-}" ] && [ $model = mlp ] && grpc_args=(--grpc-port 18204)
  build/app/actorserve serve --config config/single-node.json --port 18200 "${grpc_args[@]}" \
    2>$out/actorserve.log >/dev/null & pids+=($!)
  wait_ready http://127.0.0.1:18200/v2/health/ready $!
  sweep actorserve:$model 18200 $path $body $jl
  [ ${#grpc_args[@]} -gt 0 ] && grpc_sweep grpc/actorserve:$model 127.0.0.1:18204
  kill ${pids[-1]}; wait ${pids[-1]} 2>/dev/null || true
  echo "=== $model: python asyncio + aiohttp"
  (cd examples/bench/peers && exec ../../../$py asyncio_server.py 18201 ../../models/$model.pt $model $out_name $max_batch $window $instances $threads) 2>$out/python.log & pids+=($!)
  wait_ready http://127.0.0.1:18201/v2/health/ready $!
  sweep python:$model 18201 $path $body $jl
  kill ${pids[-1]}; wait ${pids[-1]} 2>/dev/null || true
  if [ -z "${SKIP_RAY:-}" ] && has ray.serve; then
    group_peer "Ray Serve" ray_serve_app.py 18202 "ray-serve: ready" ray
  fi
  if [ -z "${SKIP_LITSERVE:-}" ] && [ $model = mlp ] && has litserve; then
    group_peer LitServe litserve_app.py 18205 "litserve: ready" litserve
  fi
done
echo "=== bare HTTP (fixed answer; MLP-sized request)"
build/examples/bench/actorserve-bare-http 18203 2 >/dev/null & pids+=($!)
sleep 0.5
sweep bare:http 18203 /v2/models/mlp/infer $out/body-mlp
kill ${pids[-1]} 2>/dev/null || true
if [ -z "${SKIP_GRPC:-}" ]; then
  echo "=== bare gRPC (fixed answer)"
  build/examples/bench/actorserve-bare-grpc 18206 >/dev/null & pids+=($!)
  sleep 0.5
  grpc_sweep grpc/bare:grpc 127.0.0.1:18206
  kill ${pids[-1]} 2>/dev/null || true
fi
$py examples/bench/ratios.py $out
