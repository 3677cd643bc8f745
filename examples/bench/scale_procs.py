"""What autoscale_bench.py and hpa_sim.py share: the "scale" example backend as a model with a
fixed time per request, actorserve processes started from a config and stopped by their own
process group, free loopback ports, a node's series, an open-loop load and its per-second
figures."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "build/app/actorserve")
BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                               "data": [1, 2, 3, 4]}]}).encode()


def scale_model(extra=None, timeout_us=2_000_000):
    """y = 2x + 1 on FP32 [1, 4] at 20 ms a request (one instance serves ~50 a second)."""
    m = {"name": "scale", "backend": "scale", "max_batch_size": 1,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
         "parameters": {"factor": 2, "bias": 1, "delay_us": 20000},
         "default_timeout_us": timeout_us, "batching": {"max_queue_size": 100000}}
    m.update(extra or {})
    return m


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cfg, folder, name, log=False):
    """actorserve serving `cfg` (written to FOLDER/NAME.json), in its own process group; its
    output to FOLDER/NAME.log when `log`."""
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = open(os.path.join(folder, name + ".log"), "w") if log else subprocess.DEVNULL
    return subprocess.Popen([BINARY, "serve", "--config", path], stdout=out, stderr=out,
                            start_new_session=True)


async def infer_once(session, port, sent_at, results):
    """One request to the scale model, sent at `sent_at` (monotonic); appends (sent_at, latency
    from then in seconds, HTTP status, 0 when no answer came) to `results`."""
    try:
        async with session.post(f"http://127.0.0.1:{port}/v2/models/scale/infer",
                                data=BODY) as r:
            await r.read()
            results.append((sent_at, time.monotonic() - sent_at, r.status))
    except aiohttp.ClientError:
        results.append((sent_at, time.monotonic() - sent_at, 0))


async def open_loop(session, port, phases, results, t0):
    """Sends requests to the scale model from `t0` on at each (rate, seconds) phase's rate, on a
    schedule whatever the answers do (open loop); returns once every one is answered."""
    tasks, at = [], t0
    for rate, seconds in phases:
        end = at + seconds
        while at < end:
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(infer_once(session, port, at, results)))
            at += 1.0 / rate
    await asyncio.gather(*tasks)


def per_second(t0, results, seconds):
    """(requests sent, answered 200, p99 of those in ms) for each second of the load."""
    rows = []
    for s in range(int(seconds)):
        window = [r for r in results if s <= r[0] - t0 < s + 1]
        ok = sorted(r[1] for r in window if r[2] == 200)
        p99 = ok[int(0.99 * (len(ok) - 1))] * 1e3 if ok else float("nan")
        rows.append((len(window), len(ok), p99))
    return rows


def series(port, name_and_labels):
    """The value of one series of the node's /metrics, written as exposed; None when absent."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept-Encoding": "identity"})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def stop(p, wait=30):
    """SIGTERM to its process group (it drains), SIGKILL after `wait` seconds."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
