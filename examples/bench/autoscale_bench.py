"""Autoscaling under a stepped open-loop load, and cold start from zero instances. One run, one
machine.

The "scale" example backend with a fixed 20 ms per batch of one request: one instance serves
~50 requests a second. An open-loop load (requests sent on a schedule, whatever the answers do)
steps LOW -> HIGH -> LOW requests a second; the same run with autoscaling off (one instance,
as `instances: 1`) and on (1 to 4). Per second it prints the offered and served load, p99 and the
instances (from /metrics); then, per run: the time from the step up until p99 is back under
the objective, requests lost (anything not answered 200), and the time from the step down until
the extra instances are gone. Then the cold start: a model at zero instances, one request, how
long its answer took.

    .venv/bin/python examples/bench/autoscale_bench.py [--low 20 --high 150 --step 15
        --objective-ms 100]

Needs a built tree (build/). Every process it starts is stopped by its own process group.
"""
import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request

import aiohttp

from scale_procs import (BODY, ROOT, free_port, open_loop, per_second, scale_model, series,
                         spawn, stop)


def config(port, autoscaling):
    model = scale_model({"autoscaling": autoscaling} if autoscaling else None)
    return {"server": {"http": {"port": port}, "log_level": "info"}, "models": [model]}


def start(cfg, folder, name):
    p = spawn(cfg, folder, name, log=True)
    port = cfg["server"]["http"]["port"]
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return p
        except OSError:
            if p.poll() is not None:
                sys.exit("autoscale_bench: actorserve exited")
            time.sleep(0.1)
    sys.exit("autoscale_bench: actorserve did not become ready")


READY = 'actorserve_instances{model="scale",state="ready"}'


async def stepped_load(port, phases):
    """The open-loop load, with the ready instances read once a second meanwhile."""
    results, instances = [], []  # (sent_at, latency_s, status); (second, ready)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn,
                                     headers={"Accept-Encoding": "identity"}) as session:
        t0 = time.monotonic()
        load = asyncio.ensure_future(open_loop(session, port, phases, results, t0))
        loop = asyncio.get_running_loop()
        while not load.done():
            n = await loop.run_in_executor(None, series, port, READY)
            instances.append((int(round(time.monotonic() - t0)), int(n if n is not None else -1)))
            await asyncio.sleep(1.0)
        await load
    return t0, results, instances


def run(label, autoscaling, args, folder):
    port = free_port()
    p = start(config(port, autoscaling), folder, label)
    try:
        phases = [(args.low, args.step), (args.high, args.step), (args.low, args.step)]
        t0, results, instances = asyncio.run(stepped_load(port, phases))
    finally:
        stop(p)
    total = 3 * args.step
    ready = dict(instances)
    rows = [(sec, offered, served, p99, ready.get(sec, -1))
            for sec, (offered, served, p99) in enumerate(per_second(t0, results, total))]
    with open(os.path.join(folder, label + ".log")) as f:  # (the autoscaler's decisions)
        decisions = [line.split(": ", 1)[-1].strip() for line in f if "scaling " in line]
    print(f"\n== {label}")
    print(" s  offered  served(200)  p99_ms  ready_instances")
    for s, offered, served, p99, n in rows:
        print(f"{s:2d}  {offered:7d}  {served:11d}  {p99:6.1f}  {n}")
    lost = sum(1 for r in results if r[2] != 200)
    if decisions:
        print("decisions: " + "; ".join(decisions))
    recovered = None
    for s, offered, served, p99, n in rows[args.step:2 * args.step]:
        if p99 == p99 and p99 <= args.objective_ms and served > 0:
            if recovered is None:
                recovered = s - args.step
        else:
            recovered = None
    down = None
    base = rows[args.step - 1][4]
    for s, _, _, _, n in rows[2 * args.step:]:
        if 0 <= n <= base:
            down = s - 2 * args.step
            break
    up = f"{recovered} s after the step up (and stayed)" if recovered is not None else "never"
    back = f"{down} s after the step down" if down is not None else "not within the run"
    print(f"{label}: requests {len(results)}, not answered 200: {lost}; p99 back under "
          f"{args.objective_ms} ms: {up}; instances back to {base}: {back}")
    return lost, recovered


async def cold(port, name, body):
    async with aiohttp.ClientSession(headers={"Accept-Encoding": "identity"}) as session:
        t = time.monotonic()
        async with session.post(f"http://127.0.0.1:{port}/v2/models/{name}/infer",
                                data=body) as r:
            await r.read()
            return r.status, time.monotonic() - t


# Cold starts: the scale backend (nothing to load), and TorchScript models as the quickstart makes
# them (examples/models/make_models.py), each loaded and warmed up (batch 1) for the request.
TORCHSCRIPT = [("mlp", [64], [10]), ("resnet18", [3, 224, 224], [1000])]


def cold_models():
    yield "scale", config(0, None)["models"][0], BODY
    for name, dims, out in TORCHSCRIPT:
        path = os.path.join(ROOT, "examples", "models", name + ".pt")
        if not os.path.exists(path):
            continue
        m = {"name": name, "backend": "torchscript", "path": path, "max_batch_size": 8,
             "inputs": [{"name": "input", "datatype": "FP32", "dims": dims}],
             "outputs": [{"name": "logits", "datatype": "FP32", "dims": out}],
             "warmup": {"batch_sizes": [1], "iterations": 1}, "default_timeout_us": 60_000_000}
        n = 1
        for d in dims:
            n *= d
        body = json.dumps({"inputs": [{"name": "input", "shape": [1] + dims, "datatype": "FP32",
                                       "data": [0.5] * n}]}).encode()
        yield name, m, body


def cold_start(folder):
    print()
    for name, m, body in cold_models():
        port = free_port()
        m = dict(m, autoscaling={"min_instances": 0, "max_instances": 2, "initial_instances": 1,
                                 "downscale_delay_ms": 500, "look_back_ms": 300,
                                 "interval_ms": 100})
        p = start({"server": {"http": {"port": port, "max_body_bytes": 16 << 20},
                              "log_level": "warn"}, "models": [m]}, folder, "cold-" + name)
        try:
            for _ in range(100):  # until it is down to zero
                if series(port, f'actorserve_instances{{model="{name}",state="ready"}}') == 0:
                    break
                time.sleep(0.1)
            status, took = asyncio.run(cold(port, name, body))
        finally:
            stop(p)
        print(f"cold start, {name}: at zero instances, the first request answered {status} "
              f"after {took * 1e3:.1f} ms (an instance started, loaded and warmed up for it)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--low", type=float, default=20)
    ap.add_argument("--high", type=float, default=150)
    ap.add_argument("--step", type=int, default=15, help="seconds per phase")
    ap.add_argument("--objective-ms", type=float, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run("autoscaling off (1 instance)", None, args, folder)
        run("autoscaling on (1..4)", {"min_instances": 1, "max_instances": 4,
                                      "target_ongoing_requests": 2, "upscale_delay_ms": 1000,
                                      "downscale_delay_ms": 5000, "look_back_ms": 2000,
                                      "target_queue_wait_ms": 50, "interval_ms": 250}, args,
            folder)
        cold_start(folder)


if __name__ == "__main__":
    main()
