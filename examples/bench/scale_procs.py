"""What autoscale_bench.py and hpa_sim.py share: the "scale" example backend as a model with a
fixed time per request, actorserve processes started from a config and stopped by their own
process group, free loopback ports."""
import json
import os
import signal
import socket
import subprocess
import time

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


def stop(p, wait=30):
    """SIGTERM to its process group (it drains), SIGKILL after `wait` seconds."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
