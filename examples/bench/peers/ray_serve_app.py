#!/usr/bin/env python3
"""The actor-based serving system most teams would pick instead: a Ray Serve deployment using
@serve.batch with the same maximum batch and wait as actorserve's configuration, the TorchScript
model in each replica. Speaks enough KServe v2 for the benchmark (JSON and binary input).

usage: ray_serve_app.py PORT MODEL_PATH MODEL_NAME OUTPUT_NAME MAX_BATCH WINDOW_US REPLICAS THREADS
(runs until SIGTERM or SIGINT, then shuts down the Serve application and the local Ray cluster it
started; prints 'ray-serve: ready' once the deployment answers)
"""
import signal
import sys
import time
import urllib.request

import numpy as np
import ray
import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kserve_common import decode, encode


def main():
    port, path, name, output = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    max_batch, window, replicas = int(sys.argv[5]), int(sys.argv[6]) / 1e6, int(sys.argv[7])
    threads = int(sys.argv[8])

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0},
                      max_ongoing_requests=1024)
    class Model:
        def __init__(self):
            torch.set_num_threads(threads)
            self.model = torch.jit.load(path).eval()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=window)
        async def run(self, arrays):
            sizes = [a.shape[0] for a in arrays]
            with torch.inference_mode():
                out = self.model(torch.from_numpy(np.concatenate(arrays))).numpy()
            parts, offset = [], 0
            for n in sizes:
                parts.append(out[offset:offset + n])
                offset += n
            return parts

        async def __call__(self, request: Request):
            if request.method == "GET":
                return JSONResponse({"ready": True})
            body = await request.body()
            jl = request.headers.get("inference-header-content-length")
            _, arr = decode(body, int(jl) if jl else None)
            out = await self.run(arr)
            return Response(encode(name, output, out), media_type="application/json")

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Model.bind(), route_prefix=f"/v2/models/{name}/infer")
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{name}/infer", timeout=2)
            break
        except Exception:
            time.sleep(0.1)
    print("ray-serve: ready", flush=True)

    def stop(*_):
        # What this process started, and nothing else of the user's: its Serve application and
        # the local Ray cluster ray.init() made for it.
        serve.shutdown()
        ray.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
