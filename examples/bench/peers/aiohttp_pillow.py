"""The image preprocessing service as it is usually first written: aiohttp, an asyncio semaphore
bounding the downloads, Pillow and numpy for torchvision's Resize(256), CenterCrop(224),
ToTensor, Normalize, the CPU work in a process pool. The peer of examples/bench/image_bench.py.

POST /preprocess {"urls": [...]} -> the float32 tensor [n, 3, 224, 224] as raw bytes.
Usage: aiohttp_pillow.py PORT [WORKERS]
"""
import asyncio
import io
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def preprocess(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return ((x - MEAN) / STD).astype(np.float32).tobytes()


async def main(port, workers):
    pool = ProcessPoolExecutor(max_workers=workers)
    sem = asyncio.Semaphore(64)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, limit_per_host=16))
    loop = asyncio.get_running_loop()

    async def fetch(url):
        async with sem:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                r.raise_for_status()
                return await r.read()

    async def handle(request):
        urls = (await request.json())["urls"]
        bodies = await asyncio.gather(*(fetch(u) for u in urls))
        tensors = await asyncio.gather(*(loop.run_in_executor(pool, preprocess, b)
                                         for b in bodies))
        return web.Response(body=b"".join(tensors), content_type="application/octet-stream")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/preprocess", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"aiohttp_pillow: listening on {port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await session.close()
    await runner.cleanup()
    pool.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()))
