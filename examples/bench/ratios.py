#!/usr/bin/env python3
"""Reads bench-results/ (loadgen JSONL and the direct-model table) and prints the comparison:
actorserve vs Ray Serve and the Python peer (throughput and p99), vs the direct model call, vs the
bare HTTP server; plots latency against throughput when matplotlib is there."""
import collections
import json
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
runs = collections.defaultdict(dict)  # label -> load -> record
for line in open(f"{out}/results.jsonl"):
    r = json.loads(line)
    runs[r["label"]][int(r["load"])] = r
direct = {}
for line in open(f"{out}/direct.txt"):
    parts = line.split()
    if len(parts) == 4 and parts[1].isdigit():
        direct[(parts[0], int(parts[1]))] = float(parts[2])
bare = runs.get("bare:http", {})

def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"

models = sorted({label.split(":")[1] for label in runs if label.startswith("actorserve:")})
print()
print(f"{'model':9} {'conc':>4} {'system':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
for m in models:
    for c in sorted(runs[f"actorserve:{m}"]):
        for system in ("actorserve", "ray", "python"):
            r = runs.get(f"{system}:{m}", {}).get(c)
            if r:
                print(f"{m:9} {c:>4} {system:10} {r['requests_per_s']:>9.0f} {r['p50_us']/1000:>8.2f} "
                      f"{r['p99_us']/1000:>8.2f} {sum(r['errors'].values()):>6}")
print()
print(f"{'model':9} {'conc':>4} {'vs Ray thr':>10} {'vs Ray p99':>10} {'vs Py thr':>10} {'vs Py p99':>10} "
      f"{'vs direct':>10} {'vs bare HTTP':>12}")
for m in models:
    for c in sorted(runs[f"actorserve:{m}"]):
        a = runs[f"actorserve:{m}"][c]
        ray = runs.get(f"ray:{m}", {}).get(c)
        py = runs.get(f"python:{m}", {}).get(c)
        batch = min(c, max(b for (mm, b) in direct if mm == m)) if any(mm == m for (mm, _) in direct) else None
        d = direct.get((m, batch)) if batch else None
        b = bare.get(c)
        print(f"{m:9} {c:>4} "
              f"{ratio(a['requests_per_s'], ray['requests_per_s']) if ray else 'n/a':>10} "
              f"{ratio(a['p99_us'], ray['p99_us']) if ray else 'n/a':>10} "
              f"{ratio(a['requests_per_s'], py['requests_per_s']) if py else 'n/a':>10} "
              f"{ratio(a['p99_us'], py['p99_us']) if py else 'n/a':>10} "
              f"{ratio(a['requests_per_s'], d) if d else 'n/a':>10} "
              f"{ratio(a['requests_per_s'], b['requests_per_s']) if (b and m == 'mlp') else 'n/a':>12}")
print("(throughput ratios: actorserve / peer, higher is better; p99 ratios: actorserve / peer, lower is better;"
      " 'vs direct': actorserve req/s over the model's rows/s called directly at batch min(conc, max batch);"
      " 'vs bare HTTP': over a server that does no work)")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, m in zip(axes[0], models):
        for system in ("actorserve", "ray", "python"):
            pts = runs.get(f"{system}:{m}", {})
            if pts:
                xs = [pts[c]["requests_per_s"] for c in sorted(pts)]
                ys = [pts[c]["p99_us"] / 1000 for c in sorted(pts)]
                ax.plot(xs, ys, marker="o", label=system)
        ax.set_title(f"{m}: p99 latency vs throughput")
        ax.set_xlabel("requests/s"); ax.set_ylabel("p99 ms"); ax.set_yscale("log"); ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/latency_vs_throughput.png")
    print(f"plot: {out}/latency_vs_throughput.png")
except ImportError:
    print("plot skipped: matplotlib is not installed (examples/bench/install.sh installs it)")
