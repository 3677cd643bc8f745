#!/usr/bin/env python3
"""The design most teams write first: an aiohttp + asyncio server with dynamic batching (a queue,
a batching window and a maximum batch) and the TorchScript model run in an executor thread, one
batch loop per model instance. Speaks enough KServe v2 for the benchmark (JSON and binary input).

usage: asyncio_server.py PORT MODEL_PATH MODEL_NAME OUTPUT_NAME MAX_BATCH WINDOW_US INSTANCES THREADS
                         [DEVICE [images-fp16]]

DEVICE (default cpu) is where the model runs ("cuda:0"). With "images-fp16" requests carry raw
uint8 HWC images, which the server moves to the device and normalizes there (ImageNet mean/std,
fp16 NCHW channels-last) before the model: what a careful Python server does on a GPU.
"""
import asyncio
import concurrent.futures
import sys

import numpy as np
import torch
from aiohttp import web

from kserve_common import decode, encode, encode_binary, wants_binary


def main():
    port, path, name, output = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    max_batch, window, instances = int(sys.argv[5]), int(sys.argv[6]) / 1e6, int(sys.argv[7])
    torch.set_num_threads(int(sys.argv[8]))
    device = torch.device(sys.argv[9] if len(sys.argv) > 9 else "cpu")
    images = len(sys.argv) > 10 and sys.argv[10] == "images-fp16"
    model = torch.jit.load(path, map_location=device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=instances)
    queue: asyncio.Queue = asyncio.Queue()

    def run(batch):
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device, non_blocking=True)
            if images:
                x = ((x.permute(0, 3, 1, 2).float() - mean) / std).half()
                x = x.contiguous(memory_format=torch.channels_last)
            return model(x).float().cpu().numpy()

    async def batch_loop():
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            rows = items[0][0].shape[0]
            deadline = loop.time() + window
            while rows < max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                else:
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                items.append(item)
                rows += item[0].shape[0]
            batch = np.concatenate([x for x, _ in items])
            try:
                out = await loop.run_in_executor(executor, run, batch)
                offset = 0
                for x, fut in items:
                    fut.set_result(out[offset:offset + x.shape[0]])
                    offset += x.shape[0]
            except Exception as e:  # answer every request of the batch
                for _, fut in items:
                    fut.set_exception(e)

    async def infer(request: web.Request):
        body = await request.read()
        jl = request.headers.get("Inference-Header-Content-Length")
        try:
            header, arr = decode(body, int(jl) if jl else None)
        except Exception as e:
            return web.json_response({"error": str(e)}, status=400)
        fut = asyncio.get_running_loop().create_future()
        await queue.put((arr, fut))
        out = await fut
        if wants_binary(header):
            body, jl = encode_binary(name, output, out)
            return web.Response(body=body, content_type="application/octet-stream",
                                headers={"Inference-Header-Content-Length": str(jl)})
        return web.Response(body=encode(name, output, out), content_type="application/json")

    async def ready(_):
        return web.json_response({"ready": True})

    async def start(app):
        for _ in range(instances):
            asyncio.get_running_loop().create_task(batch_loop())

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post(f"/v2/models/{name}/infer", infer)
    app.router.add_get("/v2/health/ready", ready)
    app.on_startup.append(start)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
