#!/usr/bin/env python3
"""wrk (Debian package) as the benchmark's second client: one closed-loop run per concurrency
with examples/bench/wrk_infer.lua, each appended to the results JSONL in actorserve-loadgen's
format (label, mode "closed", load, requests_per_s, p50/p90/p99_us, errors), so ratios.py reads
both clients alike. wrk measures with its own event loop and histogram: no figure of the
comparison depends only on the project's own client.

usage: wrk_sweep.py LABEL PORT PATH BODY_FILE CONCURRENCIES SECONDS JSONL [JSON_LENGTH]
       (CONCURRENCIES: comma-separated; threads: 1 below concurrency 2, else 2)
"""
import json
import os
import re
import subprocess
import sys

label, port, path, body, concs, secs, out = sys.argv[1:8]
json_length = sys.argv[8] if len(sys.argv) > 8 else ""
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_infer.lua")
env = dict(os.environ, BODY=body, JSON_LENGTH=json_length)
for c in (int(x) for x in concs.split(",")):
    threads = 1 if c < 2 else 2
    run = subprocess.run(["wrk", f"-t{threads}", f"-c{c}", f"-d{secs}s", "--timeout", "30s",
                          "-s", script, f"http://127.0.0.1:{port}{path}"],
                         env=env, capture_output=True, text=True, check=True)
    m = re.search(r"RESULT requests_per_s=(\d+) p50_us=(\d+) p90_us=(\d+) p99_us=(\d+) "
                  r"max_us=(\d+) errors=(\d+)", run.stdout)
    if not m:
        sys.exit(f"wrk printed no result for {label} at {c}:\n{run.stdout}{run.stderr}")
    rps, p50, p90, p99, _, errors = (int(x) for x in m.groups())
    record = {"label": label, "mode": "closed", "load": c, "requests_per_s": rps,
              "p50_us": p50, "p90_us": p90, "p99_us": p99,
              "errors": {"wrk": errors} if errors else {}}
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"{label:14} wrk {c:>5} {rps:>10} req/s  p50 {p50} us  p99 {p99} us  errors {errors}")
