#!/usr/bin/env bash
# What tracing costs a node: the quickstart MLP over HTTP/JSON with wrk at concurrency 64 and 1,
# with tracing off, at sample_ratio 0.01 and at 1.0 (server.tracing), exporting over OTLP/HTTP to
# a collector that takes every export and does nothing with it (actorserve-bare-http: what a
# collector costs runs on its own machine in production, not on the node's cores). Rounds
# interleave the three set-ups, in turn first, so that the machine's drift hits them alike; the
# table gives each
# one's median over the rounds and its throughput as a share of tracing off.
# Usage: examples/bench/tracing_cost.sh [SECONDS] [ROUNDS]   (defaults 8 3; needs wrk, the MLP
# from examples/models/make_models.py and the bench programs: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}; rounds=${2:-3}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk"; exit 1; }
[ -f examples/models/mlp.pt ] || { echo "needs examples/models/mlp.pt (examples/models/make_models.py)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
collector_port=18431 port=18432
build/examples/bench/actorserve-bare-http $collector_port 1 >/dev/null 2>&1 &
pids+=($!)
python3 - "$work" "$collector_port" <<'PY'
import json, os, sys
work, collector = sys.argv[1], sys.argv[2]
cfg = json.load(open("config/single-node.json"))
cfg["models"] = [m for m in cfg["models"] if m["name"] == "mlp"]
cfg["models"][0]["path"] = os.path.abspath("examples/models/mlp.pt")
cfg["server"]["log_level"] = "warn"
for name, ratio in (("off", None), ("0.01", 0.01), ("1.0", 1.0)):
    c = json.loads(json.dumps(cfg))
    if ratio is not None:
        c["server"]["tracing"] = {"endpoint": "http://127.0.0.1:%s/v1/traces" % collector,
                                  "sample_ratio": ratio, "sample_errors": True}
    json.dump(c, open(os.path.join(work, name + ".json"), "w"))
PY
python3 -c 'import json; print(json.dumps({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[round(0.01*i,2) for i in range(64)]}]}))' > "$work/body.json"
modes=(off 0.01 1.0)
for round in $(seq "$rounds"); do
  for k in 0 1 2; do # (each round starts with another set-up: no set-up always runs first)
    mode=${modes[$(( (round + k) % 3 ))]}
    build/app/actorserve serve --config "$work/$mode.json" --port $port >/dev/null 2>"$work/server.log" &
    server=$!
    pids+=($server)
    until curl -sf localhost:$port/v2/health/ready >/dev/null; do
      kill -0 $server 2>/dev/null || { echo "the server exited:"; cat "$work/server.log"; exit 1; }
      sleep 0.01
    done
    BODY="$work/body.json" wrk -t1 -c8 -d1s -s examples/bench/wrk_infer.lua http://127.0.0.1:$port/v2/models/mlp/infer >/dev/null
    for c in 64 1; do
      threads=$(( c < 2 ? 1 : 2 ))
      line=$(BODY="$work/body.json" wrk -t$threads -c$c -d${secs}s -s examples/bench/wrk_infer.lua \
               http://127.0.0.1:$port/v2/models/mlp/infer | grep RESULT)
      echo "round=$round mode=$mode c=$c $line" | tee -a "$work/results"
    done
    spans=$(curl -s localhost:$port/metrics | grep '^actorserve_trace_spans_total' | tr '\n' ' ' || true)
    [ -n "$spans" ] && echo "round=$round mode=$mode spans: $spans"
    kill $server; wait $server 2>/dev/null || true
  done
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = dict(re.findall(r"(\w+)=(\S+)", line))
    rows.setdefault((m["mode"], m["c"]), []).append(m)
print("\n| tracing | c=64 req/s | share of off | c=64 p99 | c=1 p50 | c=1 added vs off |")
print("| --- | --- | --- | --- | --- | --- |")
med = lambda mode, c, k: statistics.median(float(r[k]) for r in rows[(mode, c)])
for mode in ("off", "0.01", "1.0"):
    print("| %s | %.0f | %.1f%% | %.2f ms | %.0f us | %+.0f us |" % (
        mode, med(mode, "64", "requests_per_s"),
        100 * med(mode, "64", "requests_per_s") / med("off", "64", "requests_per_s"),
        med(mode, "64", "p99_us") / 1000, med(mode, "1", "p50_us"),
        med(mode, "1", "p50_us") - med("off", "1", "p50_us")))
PY
