#!/usr/bin/env bash
# The GPU check, in one go on the GPU machine (see ../shared/gpu/README.md; the device tool runs it):
# unpacks the Debian packages that machine lacks (.gpu-debs/, made here by
# scripts/fetch-gpu-debs.sh), builds against that machine's libtorch, runs the unit tests and the
# GPU tests (ctest label gpu), makes ResNet-50 fp16, checks a served model's answers against
# PyTorch, then benchmarks at 256 connections: actorserve end to end (also at EXTRA connections),
# the model called directly (the ceiling) and the Python asyncio peer; prints the table, then
# measures variants of the deployment (batching.stage_ahead off, the worker isolated in a process,
# three batches in flight) and prints the table again with them.
# Full logs go to $OUT (default gpu-results/).
#   scripts/gpu-check.sh            # SECS=15 CONC=256 BATCH=128 to change the run
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-results}; mkdir -p "$OUT"
SECS=${SECS:-15}; CONC=${CONC:-256}; BATCH=${BATCH:-128}
EXTRA=${EXTRA:-384} # further concurrencies for actorserve only (fuller batches in both slots)
t0=$(date +%s); stamp() { echo "[gpu-check +$(( $(date +%s) - t0 ))s] $*"; }
SR=/tmp/sr; mkdir -p $SR
for f in .gpu-debs/*.deb; do dpkg -x "$f" $SR; done
export LD_LIBRARY_PATH=$SR/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
card=$(head -1 "$OUT/gpu.txt" | cut -d, -f1)

stamp "configure"
TP=$($PY -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
# (The gRPC front and queue ingress are not what this measures: left out, so that whatever that
# machine has of gRPC or hiredis neither slows the build nor breaks it.)
cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TP;$SR/usr" -DBoost_DIR=$SR/usr/lib/x86_64-linux-gnu/cmake/Boost-1.81.0 \
  -DACTORSERVE_WITH_GRPC=OFF -DACTORSERVE_WITH_QUEUES=OFF \
  >"$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
stamp "build"
cmake --build build-gpu -j"$(nproc)" --target actorserve unit_tests gpu_tests actorserve-loadgen \
  actorserve-direct >"$OUT/build.log" 2>&1 || { grep -E "error|Error" -A4 "$OUT/build.log" | head -80; exit 1; }
B=build-gpu

stamp "tests: unit + gpu"
(cd $B && ctest -L "unit|gpu" -j4 --output-on-failure --timeout 300) >"$OUT/ctest.log" 2>&1
tests_rc=$?
grep -E "tests passed|tests failed|Skipped|Failed|\*\*\*" "$OUT/ctest.log" | tail -15

stamp "models"
$PY examples/models/make_resnet50.py --out examples/models >"$OUT/models.log" 2>&1 || { cat "$OUT/models.log"; exit 1; }
$PY examples/bench/gpu/torch_ceiling.py examples/models/resnet50_fp16.pt "$BATCH" | tee "$OUT/ceiling.json"
$B/examples/bench/actorserve-direct config/gpu-resnet50.json resnet50 "32,$BATCH" 3 | tee "$OUT/direct.txt"

# The request: one raw 224x224x3 uint8 image with the binary extension, binary logits back.
$PY - "$OUT" <<'PY'
import json, sys, numpy as np
h = json.dumps({"inputs": [{"name": "image", "shape": [1, 224, 224, 3], "datatype": "UINT8",
                            "parameters": {"binary_data_size": 224 * 224 * 3}}],
                "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
img = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8).tobytes()
open(sys.argv[1] + "/body.bin", "wb").write(h + img)
open(sys.argv[1] + "/body.len", "w").write(str(len(h)))
PY
jl=$(cat "$OUT/body.len")
lg() { # LABEL PORT [CONCURRENCY]
  $B/examples/bench/actorserve-loadgen --port "$2" --path /v2/models/resnet50/infer \
    --body "$OUT/body.bin" --json-length "$jl" --content-type application/octet-stream \
    --concurrency "${3:-$CONC}" --threads 4 --duration "$SECS" --warmup 3 --label "$1" \
    --json "$OUT/load.jsonl" 2>/dev/null | tee -a "$OUT/load.txt"
}
fetch() { # URL (no curl needed)
  $PY -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1" 2>/dev/null
}
wait_ready() { # PORT PID
  for _ in $(seq 1200); do
    fetch "http://127.0.0.1:$1/v2/health/ready" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done; return 1
}

stamp "actorserve"
$B/app/actorserve serve --config config/gpu-resnet50.json --port 18300 >"$OUT/actorserve.log" 2>&1 &
pid=$!
if wait_ready 18300 $pid; then
  stamp "ready"; grep -E "warmed up|capture|CUDA" "$OUT/actorserve.log" | head -5
  $PY examples/bench/gpu/check_server.py 18300 resnet50 examples/models/resnet50_fp16.pt | tee "$OUT/check.json"
  (sleep $(( SECS / 2 + 3 )); fetch http://127.0.0.1:18300/metrics | grep -E "^actorserve_gpu" >"$OUT/gpu-metrics.txt") &
  mpid=$!
  lg actorserve 18300
  wait $mpid # (not a bare wait: the server is a child too)
  for c in $EXTRA; do lg "actorserve@$c" 18300 "$c"; done
  fetch http://127.0.0.1:18300/v2/models/resnet50/stats >"$OUT/stats.json"
  cat "$OUT/gpu-metrics.txt"
  $PY - "$OUT/stats.json" <<'PY'
import json, sys
ms = json.load(open(sys.argv[1]))["model_stats"][0]
rows = sum(b["compute_infer"]["count"] * b["batch_size"] for b in ms["batch_stats"]) or 1
bat = sum(b["compute_infer"]["count"] for b in ms["batch_stats"]) or 1
print(f"batches {bat}, mean batch {ms['inference_count'] / max(ms['execution_count'], 1):.1f} rows")
PY
else
  echo "actorserve did not become ready:"; tail -20 "$OUT/actorserve.log"
fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null

stamp "python asyncio peer"
(cd examples/bench/peers && exec $PY asyncio_server.py 18301 ../../models/resnet50_fp16.pt resnet50 logits \
   "$BATCH" 2000 1 4 cuda:0 images-fp16) >"$OUT/python.log" 2>&1 &
pid=$!
if wait_ready 18301 $pid; then lg python 18301; else echo "python peer failed"; tail -20 "$OUT/python.log"; fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null

table() { # prints the table (again at the end, with the variants)
$PY - "$OUT" "$card" "$CONC" "$BATCH" <<'PY' | tee "$OUT/table.txt"
import json, sys
out, card, conc, batch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ceil = json.load(open(out + "/ceiling.json"))
runs = {}
for line in open(out + "/load.jsonl"):
    r = json.loads(line); runs[r["label"]] = r
def rps(r): return r["requests_per_s"]
def errs(r): return sum(r["errors"].values())
print(f"\nResNet-50 fp16, raw 224x224x3 uint8 requests (binary), {conc} connections, {card}")
print(f"{'system':<34} {'img/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
print(f"{'direct call (TorchScript, batch ' + batch + ')':<34} {ceil['images_per_s']:>9.0f} {'-':>8} {'-':>8} {'-':>7}")
for name in ["actorserve", "python"] + sorted(k for k in runs if k.startswith("actorserve") and k != "actorserve"):
    r = runs.get(name)
    if not r: print(f"{name:<34} (no result)"); continue
    print(f"{name:<34} {rps(r):>9.0f} {r['p50_us']/1e3:>8.1f} {r['p99_us']/1e3:>8.1f} {errs(r):>7}")
a, p = runs.get("actorserve"), runs.get("python")
if a:
    print(f"actorserve / direct ceiling: {rps(a) / ceil['images_per_s']:.2f}")
if a and p:
    print(f"actorserve / python peer:    {rps(a) / rps(p):.1f}x")
PY
}
stamp "table (the variants follow)"; table

# Variants of the deployment at CONC on the same card: batching.stage_ahead off (a busy worker's
# spare slot takes full batches only), the worker isolated in its own process (batch inputs
# through shared memory), and three batches in flight instead of two. They come after the table's
# main rows, so that a run cut short still has those.
variant() { # LABEL PORT WAIT_S PYTHON-STATEMENT-ON-m
  local label=$1 port=$2 wait_s=$3 change=$4 file="$OUT/variant-$2.json"
  stamp "$label"
  $PY - "$file" "$change" <<'PY'
import json, os, sys
c = json.load(open("config/gpu-resnet50.json"))
m = c["models"][0]
m["path"] = os.path.abspath(os.path.join("config", m["path"]))
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"))
PY
  $B/app/actorserve serve --config "$file" --port "$port" >"$OUT/variant-$port.log" 2>&1 &
  local vpid=$!
  local ok=1
  for _ in $(seq $(( wait_s * 10 ))); do
    fetch "http://127.0.0.1:$port/v2/health/ready" >/dev/null && { ok=0; break; }
    kill -0 $vpid 2>/dev/null || break
    sleep 0.1
  done
  if [ $ok = 0 ]; then lg "$label" "$port"; else echo "$label: not ready"; tail -20 "$OUT/variant-$port.log"; fi
  kill $vpid 2>/dev/null; wait $vpid 2>/dev/null
}
variant "actorserve (stage_ahead off)" 18302 120 'm["batching"]["stage_ahead"] = False'
variant "actorserve (isolated worker)" 18303 60 'm["isolation"] = "process"'
variant "actorserve (3 batches in flight)" 18304 120 'm["gpu"]["inflight_batches"] = 3'
stamp "table"
table
stamp "done (tests rc=$tests_rc)"
exit $tests_rc
