#!/usr/bin/env python3
"""Reads bench-results/ (the clients' JSONL and the direct-model table) and prints the comparison:
actorserve against Ray Serve, LitServe and the Python asyncio peer (throughput and p99), against
the model called directly and the bare servers; then the per-request cost targets, for each
client: the latency actorserve adds at concurrency 1 (its p50, less the bare server's p50, less
one direct model call at batch 1; target <= 100 us) and its share of the bare server's
requests/s at the highest concurrency (target >= 50%, p99 beside it). Plots latency against
throughput when matplotlib is there.

Labels: "SYSTEM:MODEL" (actorserve-loadgen), "wrk/SYSTEM:MODEL" (wrk), "grpc/SYSTEM:MODEL"
(grpc_bench.py); the bare servers are "bare:http" and "bare:grpc"."""
import collections
import json
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
runs = collections.defaultdict(dict)  # label -> load -> record
for line in open(f"{out}/results.jsonl"):
    r = json.loads(line)
    runs[r["label"]][int(r["load"])] = r
direct = {}  # (model, batch) -> (rows/s, us per batch)
try:
    for line in open(f"{out}/direct.txt"):
        parts = line.split()  # model device batch rows_per_s us_per_batch
        if len(parts) == 5 and parts[2].isdigit():
            direct[(parts[0], int(parts[2]))] = (float(parts[3]), float(parts[4]))
except FileNotFoundError:
    pass

CLIENTS = [("", "actorserve-loadgen", "bare:http"), ("wrk/", "wrk", "bare:http"),
           ("grpc/", "grpc_bench.py (gRPC)", "bare:grpc")]
PEERS = ("actorserve", "ray", "litserve", "python")


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def errors(r):
    return sum(r["errors"].values())


models = sorted({label.split(":")[1] for label in runs
                 if label.split("/")[-1].startswith("actorserve:")})
for prefix, client, _ in CLIENTS:
    rows = [(m, c, s, runs[f"{prefix}{s}:{m}"][c]) for m in models
            for c in sorted(runs.get(f"{prefix}actorserve:{m}", {}))
            for s in PEERS if c in runs.get(f"{prefix}{s}:{m}", {})]
    if not rows:
        continue
    print(f"\nclient: {client}")
    print(f"{'model':9} {'conc':>4} {'system':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for m, c, s, r in rows:
        print(f"{m:9} {c:>4} {s:10} {r['requests_per_s']:>9.0f} {r['p50_us'] / 1000:>8.2f} "
              f"{r['p99_us'] / 1000:>8.2f} {errors(r):>6}")
    print(f"{'model':9} {'conc':>4} {'vs Ray thr':>10} {'vs Ray p99':>10} {'vs Lit thr':>10} "
          f"{'vs Lit p99':>10} {'vs Py thr':>10} {'vs Py p99':>10} {'vs direct':>10}")
    for m in models:
        for c in sorted(runs.get(f"{prefix}actorserve:{m}", {})):
            a = runs[f"{prefix}actorserve:{m}"][c]
            cells = []
            for s in ("ray", "litserve", "python"):
                p = runs.get(f"{prefix}{s}:{m}", {}).get(c)
                cells += [ratio(a["requests_per_s"], p["requests_per_s"]) if p else "n/a",
                          ratio(a["p99_us"], p["p99_us"]) if p else "n/a"]
            batches = [b for (mm, b) in direct if mm == m]
            d = direct.get((m, min(c, max(batches)))) if batches else None
            cells.append(ratio(a["requests_per_s"], d[0]) if d else "n/a")
            print(f"{m:9} {c:>4} " + " ".join(f"{x:>10}" for x in cells))
print("\n(throughput ratios: actorserve / peer, higher is better; p99 ratios: actorserve / peer, "
      "lower is better; 'vs direct': actorserve req/s over the model's rows/s called directly at "
      "batch min(conc, max batch))")

print("\nPer-request cost, quickstart MLP (targets: added <= 100 us at concurrency 1; "
      ">= 50% of the bare server's req/s at the highest concurrency, p99 beside it)")
print(f"{'client':22} {'p50 c=1':>9} {'bare p50':>9} {'model':>7} {'added us':>9} "
      f"{'conc':>5} {'req/s':>8} {'bare req/s':>10} {'share':>7} {'p99 ms':>7} {'bare p99':>8}")
model_us = direct.get(("mlp", 1), (0, 0))[1]
for prefix, client, bare_label in CLIENTS:
    a, b = runs.get(f"{prefix}actorserve:mlp", {}), runs.get(f"{prefix}{bare_label}", {})
    if not a or not b:
        continue
    added = (f"{a[1]['p50_us'] - b[1]['p50_us'] - model_us:9.0f}" if 1 in a and 1 in b
             else f"{'n/a':>9}")
    top = max(set(a) & set(b)) if set(a) & set(b) else None
    p50 = f"{a[1]['p50_us']:9.0f}" if 1 in a else f"{'n/a':>9}"
    bp50 = f"{b[1]['p50_us']:9.0f}" if 1 in b else f"{'n/a':>9}"
    if top is None:
        print(f"{client:22} {p50} {bp50} {model_us:7.1f} {added}")
        continue
    share = a[top]["requests_per_s"] / b[top]["requests_per_s"]
    print(f"{client:22} {p50} {bp50} {model_us:7.1f} {added} {top:>5} "
          f"{a[top]['requests_per_s']:>8.0f} {b[top]['requests_per_s']:>10.0f} {share:>7.0%} "
          f"{a[top]['p99_us'] / 1000:>7.2f} {b[top]['p99_us'] / 1000:>8.2f}")
print("(added: actorserve's p50 less the bare server's p50 less one direct model call at batch 1, "
      "as the same client measures them)")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, m in zip(axes[0], models):
        for system in PEERS:
            pts = runs.get(f"{system}:{m}", {})
            if pts:
                xs = [pts[c]["requests_per_s"] for c in sorted(pts)]
                ys = [pts[c]["p99_us"] / 1000 for c in sorted(pts)]
                ax.plot(xs, ys, marker="o", label=system)
        ax.set_title(f"{m}: p99 latency vs throughput (actorserve-loadgen)")
        ax.set_xlabel("requests/s"); ax.set_ylabel("p99 ms"); ax.set_yscale("log"); ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/latency_vs_throughput.png")
    print(f"plot: {out}/latency_vs_throughput.png")
except ImportError:
    print("plot skipped: matplotlib is not installed (examples/bench/install.sh installs it)")
