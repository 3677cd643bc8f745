"""A simulation of config/kubernetes/hpa.yaml on this machine, honest about being one: no
Kubernetes here. Real processes play the parts: an actorserve front node (the model with
autoscaling, so that it exports actorserve_desired_instances) and actorserve worker nodes that
join its cluster port, one model instance each, started and stopped (SIGTERM: they leave
draining) as the "pods". The HPA is this script, applying the Horizontal Pod Autoscaler's
documented algorithm to the front's real /metrics every SYNC seconds: for an Object metric with
an AverageValue target, usage = metric / replicas / target; no change while |usage - 1| <= 0.1
(the tolerance); else desired = ceil(replicas x usage); scale-down takes the highest
recommendation of the stabilization window; min and max replicas. (Its periods are shorter than
Kubernetes' defaults, 15 s sync and 300 s down-stabilization, to fit a minute-long run.)

An open-loop load (requests sent on a schedule, whatever the answers do) steps LOW -> HIGH ->
LOW requests a second against the "scale" example backend at 20 ms per request (one worker node
serves ~50 a second). It prints a timeline per second (offered and answered load, p99, worker
nodes running, the front's desired instances), the requests lost (anything not answered 200),
and draws a PNG (instances, offered and served load, p99 over time).

    .venv/bin/python examples/bench/hpa_sim.py [--low 20 --high 150 --step 25 --png hpa_sim.png]

Needs a built tree (build/) and matplotlib for the PNG (examples/bench/install.sh). Every
process it starts is stopped by its own process group.
"""
import argparse
import asyncio
import math
import sys
import tempfile
import time

import aiohttp

from scale_procs import free_port, open_loop, per_second, scale_model, series, spawn, stop


DESIRED = 'actorserve_desired_instances{model="scale"}'
READY = 'actorserve_instances{model="scale",state="ready"}'


class Hpa:
    """The HorizontalPodAutoscaler's algorithm for one Object metric, AverageValue target."""

    def __init__(self, target, lo, hi, tolerance, down_window):
        self.target, self.lo, self.hi = target, lo, hi
        self.tolerance, self.down_window = tolerance, down_window
        self.recommendations = []  # (time, desired)

    def desired(self, now, replicas, metric):
        usage = metric / replicas / self.target
        want = replicas if abs(usage - 1) <= self.tolerance else math.ceil(replicas * usage)
        want = min(max(want, self.lo), self.hi)
        self.recommendations.append((now, want))
        self.recommendations = [(t, w) for t, w in self.recommendations
                                if now - t <= self.down_window]
        if want < replicas:  # (scale-down stabilization: the highest in the window)
            want = min(replicas, max(w for _, w in self.recommendations))
        return want


class Pods:
    def __init__(self, folder, cluster_port):
        self.folder, self.cluster_port, self.running, self.next = folder, cluster_port, [], 0

    def scale_to(self, n):
        while len(self.running) < n:
            name = f"w{self.next}"
            self.next += 1
            cfg = {"server": {"cluster": {"role": "worker", "node_name": name,
                                          "seeds": [f"127.0.0.1:{self.cluster_port}"],
                                          "drain_timeout_ms": 10000}},
                   "models": [scale_model({"instances": 1}, timeout_us=3_000_000)]}
            self.running.append(spawn(cfg, self.folder, name, log=True))
        while len(self.running) > n:  # (the newest leaves first, draining, in the background)
            p = self.running.pop()
            asyncio.get_running_loop().run_in_executor(None, stop, p)

    def stop_all(self):
        for p in self.running:
            stop(p)


async def run(args, folder):
    http, cluster = free_port(), free_port()
    front_cfg = {"server": {"http": {"port": http}, "log_level": "warn",
                            "cluster": {"role": "front", "node_name": "front",
                                        "listen": {"address": "127.0.0.1", "port": cluster}}},
                 "models": [scale_model(timeout_us=3_000_000, extra={"autoscaling": {
                     "min_instances": 1, "max_instances": args.max_pods,
                     "target_ongoing_requests": 2, "target_queue_wait_ms": 50,
                     "upscale_delay_ms": 1000, "downscale_delay_ms": 5000,
                     "look_back_ms": 2000, "interval_ms": 250}})]}
    front = spawn(front_cfg, folder, "front", log=True)
    pods = Pods(folder, cluster)
    hpa = Hpa(target=1, lo=1, hi=args.max_pods, tolerance=0.1, down_window=args.down_window)
    results, timeline = [], []  # (sent_at, latency, status); (t, pods, desired)
    try:
        pods.scale_to(1)
        for _ in range(300):
            try:
                if (series(http, READY) or 0) >= 1:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit("hpa_sim: the front did not get its first worker node")

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         headers={"Accept-Encoding": "identity"}) as session:

            async def autoscaler(t0, end):
                while time.monotonic() < end:
                    desired = await asyncio.get_running_loop().run_in_executor(
                        None, series, http, DESIRED)
                    desired = 1 if desired is None else desired
                    now = time.monotonic() - t0
                    want = hpa.desired(now, len(pods.running), desired)
                    timeline.append((now, len(pods.running), desired))
                    pods.scale_to(want)
                    await asyncio.sleep(args.sync)

            t0 = time.monotonic()
            phases = [(args.low, args.step), (args.high, args.step), (args.low, args.step * 1.6)]
            total = sum(s for _, s in phases)
            scaler = asyncio.ensure_future(autoscaler(t0, t0 + total))
            await open_loop(session, http, phases, results, t0)
            await scaler
    finally:
        pods.stop_all()
        stop(front)
    return t0, results, timeline, total


def report(t0, results, timeline, total, args):
    print(" s  offered  answered_200  p99_ms  worker_pods  desired")
    rows = []
    for s, (offered, served, p99) in enumerate(per_second(t0, results, total)):
        tl = [x for x in timeline if x[0] <= s + 1]
        pods, desired = (tl[-1][1], tl[-1][2]) if tl else (1, 1)
        rows.append((s, offered, served, p99, pods, desired))
        print(f"{s:3d}  {offered:7d}  {served:12d}  {p99:6.1f}  {pods:11d}  {desired:7.0f}")
    lost = sum(1 for r in results if r[2] != 200)
    most = max(r[4] for r in rows)
    print(f"hpa_sim: {len(results)} requests, not answered 200: {lost}; worker pods 1 -> {most} "
          f"-> {rows[-1][4]}")
    if args.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("hpa_sim: no matplotlib, no PNG (examples/bench/install.sh installs it)")
            return lost
        s = [r[0] for r in rows]
        fig, ax = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
        ax[0].step(s, [r[4] for r in rows], where="post", label="worker pods")
        ax[0].plot(s, [r[5] for r in rows], "--", label="front's desired instances")
        ax[0].set_ylabel("instances")
        ax[0].legend()
        ax[1].plot(s, [r[1] for r in rows], label="offered")
        ax[1].plot(s, [r[2] for r in rows], label="answered 200")
        ax[1].set_ylabel("requests/s")
        ax[1].legend()
        ax[2].plot(s, [r[3] for r in rows])
        ax[2].set_ylabel("p99 ms")
        ax[2].set_yscale("log")
        ax[2].set_xlabel("seconds")
        fig.suptitle("HPA simulation: real front and worker-node processes, stepped load")
        fig.savefig(args.png, dpi=100)
        print(f"hpa_sim: wrote {args.png}")
    return lost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--low", type=float, default=20)
    ap.add_argument("--high", type=float, default=150)
    ap.add_argument("--step", type=float, default=25, help="seconds per phase")
    ap.add_argument("--max-pods", type=int, default=6)
    ap.add_argument("--sync", type=float, default=2.0, help="HPA sync period, s")
    ap.add_argument("--down-window", type=float, default=10.0,
                    help="scale-down stabilization window, s")
    ap.add_argument("--png", default="hpa_sim.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        t0, results, timeline, total = asyncio.run(run(args, folder))
        lost = report(t0, results, timeline, total, args)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
