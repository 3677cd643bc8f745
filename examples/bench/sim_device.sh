#!/usr/bin/env bash
# The serving path against a simulated GPU, on any machine: how close actorserve's batching gets
# to a device's ceiling when many single-image requests arrive over HTTP. The device is the
# `simulated_gpu` example backend (examples/custom_backend): it stages each batch into reused
# buffers as the GPU path does, then "computes" on its own thread for a time shaped like
# ResNet-50 fp16 on an H200 with CUDA-graph buckets of 16 rows: 190 us + 70 us per padded row
# (9.15 ms for 128 rows), all multiplied by SCALE so that a small machine's HTTP path can keep up.
# Requests are raw 224x224x3 uint8 images (binary extension), answers 1000 binary FP32 logits.
#   examples/bench/sim_device.sh    # SCALE=3 CONC=256 SECS=10 BATCH=128 ROW_BYTES=150528 INFLIGHT=2
#                                   # RETRIES=2 STAGE_AHEAD=true|false DELAY_US=2000 (max_queue_delay_us)
#                                   # ISOLATION=none|process (process: the worker in its own process)
#                                   # TIMEOUT_US=N: each request asks for that deadline (overload:
#                                   # ROW_BYTES=1024 CONC=2048 TIMEOUT_US=200000 THREADS=2)
# Prints the ceiling (the same backend called directly at batch BATCH), actorserve's images/s,
# p50/p99, their ratio, the mean batch size and the server's CPU time per request (the whole
# process: HTTP, batching and the simulated device's staging; warm-up requests included).
# Needs build/ (scripts/build.sh). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${SCALE:-3}; CONC=${CONC:-256}; SECS=${SECS:-10}; BATCH=${BATCH:-128}
ROW_BYTES=${ROW_BYTES:-150528}; INFLIGHT=${INFLIGHT:-2}; DELAY_US=${DELAY_US:-2000}
RETRIES=${RETRIES:-2}; STAGE_AHEAD=${STAGE_AHEAD:-}; PORT=${PORT:-18410}; B=${B:-build}
ISOLATION=${ISOLATION:-none}; TIMEOUT_US=${TIMEOUT_US:-0}; THREADS=${THREADS:-1}
tmp=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT; pid=
python3 - "$tmp" "$SCALE" "$BATCH" "$ROW_BYTES" "$INFLIGHT" "$DELAY_US" "$RETRIES" "$STAGE_AHEAD" "$ISOLATION" "$TIMEOUT_US" <<'PY'
import json, sys
tmp, scale, batch, row, inflight, delay = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
retries, ahead, isolation, timeout_us = int(sys.argv[7]), sys.argv[8], sys.argv[9], int(sys.argv[10])
model = {"name": "sim", "backend": "simulated_gpu", "max_batch_size": batch,
         "inputs": [{"name": "image", "datatype": "UINT8", "dims": [row]}],
         "outputs": [{"name": "logits", "datatype": "FP32", "dims": [1000]}],
         "batching": {"max_queue_delay_us": delay, "max_queue_size": 4096},
         "warmup": {"batch_sizes": [1], "iterations": 1}, "retry": {"max_retries": retries},
         "parameters": {"inflight": inflight, "delay_us": 190 * scale,
                        "delay_per_row_us": 70 * scale, "row_granule": 16}}
if isolation != "none":
    model["isolation"] = isolation
if ahead: # unset: the server's default
    model["batching"]["stage_ahead"] = ahead == "true"
json.dump({"server": {"http": {"address": "127.0.0.1", "io_threads": 2}, "log_level": "warn"},
           "models": [model]}, open(tmp + "/sim.json", "w"))
req = {"inputs": [{"name": "image", "shape": [1, row], "datatype": "UINT8",
                   "parameters": {"binary_data_size": row}}],
       "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
if timeout_us > 0:
    req["parameters"] = {"timeout": timeout_us}
h = json.dumps(req).encode()
open(tmp + "/body.bin", "wb").write(h + bytes((i * 7) % 256 for i in range(row)))
open(tmp + "/body.len", "w").write(str(len(h)))
PY
ceiling=$($B/examples/bench/actorserve-direct "$tmp/sim.json" sim "$BATCH" 3 | awk 'NR==2 {print $4}')
$B/app/actorserve serve --config "$tmp/sim.json" --port "$PORT" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  curl -sf "localhost:$PORT/v2/health/ready" >/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/server.log"; exit 1; }
  sleep 0.05
done
cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat)
$B/examples/bench/actorserve-loadgen --port "$PORT" --path /v2/models/sim/infer --body "$tmp/body.bin" \
  --json-length "$(cat "$tmp/body.len")" --content-type application/octet-stream \
  --concurrency "$CONC" --threads "$THREADS" --duration "$SECS" --warmup 2 --label sim \
  --json "$tmp/load.json" >/dev/null 2>&1
cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
curl -sf "localhost:$PORT/v2/models/sim/stats" >"$tmp/stats.json"
python3 - "$tmp" "$ceiling" "$SCALE" "$CONC" "$BATCH" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
tmp, ceil, scale, conc, batch = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cpu_s = int(sys.argv[6]) / int(sys.argv[7]) # the server's user + system time under load
r = json.loads(open(tmp + "/load.json").read().splitlines()[-1])
ms = json.load(open(tmp + "/stats.json"))["model_stats"][0]
mean = ms["inference_count"] / max(ms["execution_count"], 1)
errs = sum(r["errors"].values())
print(f"simulated device x{scale}, batch {batch}, {conc} connections: ceiling {ceil:.0f}/s, "
      f"actorserve {r['requests_per_s']:.0f}/s ({r['requests_per_s'] / ceil:.3f}), "
      f"p50 {r['p50_us'] / 1e3:.1f} ms, p99 {r['p99_us'] / 1e3:.1f} ms, mean batch {mean:.1f}, "
      f"errors {errs}, server CPU {cpu_s * 1e6 / max(ms['inference_count'], 1):.0f} us/request")
PY
