"""The image pipeline benchmark: real photographs (scikit-image's samples, re-encoded as JPEG at
640x480, 1280x720 and 1920x1080) served over loopback by nginx; 32 URLs per request at client
concurrency 1, 8 and 32, against actorserve's `preprocess` (exact, and with shrink_to 256) and
the aiohttp + asyncio semaphore + Pillow/numpy + process pool peer; plus the ceiling, TurboJPEG
decoding the same files in a tight loop on the same cores. One run, one machine.

    .venv/bin/python examples/bench/image_bench.py [--seconds 10] [--conc 1,8,32]

Needs nginx (examples/bench/install.sh installs it with aiohttp) and a built tree (build/).
Every process it starts is stopped by its own pid (or process group), nothing else.
"""
import argparse
import asyncio
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import aiohttp
import numpy as np
from PIL import Image
import skimage.data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = [(640, 480), (1280, 720), (1920, 1080)]
NAMES = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle_left"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_images(folder):
    files = []
    for name in NAMES:
        try:
            a = getattr(skimage.data, name)()
        except Exception:  # (some samples are downloaded on demand: not here)
            continue
        if a.ndim != 3:
            continue
        img = Image.fromarray(a[..., :3]).convert("RGB")
        for w, h in SIZES:
            path = os.path.join(folder, f"{name}_{w}x{h}.jpg")
            img.resize((w, h), Image.LANCZOS).save(path, quality=90)
            files.append(path)
    return files


def start(cmd, ready_port, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, **kw)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", ready_port), timeout=0.2).close()
            return p
        except OSError:
            if p.poll() is not None:
                sys.exit(f"image_bench: {cmd[0]} exited")
            time.sleep(0.1)
    sys.exit(f"image_bench: {cmd[0]} did not start")


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def nginx(folder, port):
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; sendfile on;
  server {{ listen 127.0.0.1:{port}; root {folder}/www; }} }}
""")
    return start(["nginx", "-c", conf, "-p", folder], port)


def actorserve(folder, port, shrink):
    cfg = {"server": {"http": {"port": port, "io_threads": 2}},
           "models": [{"name": "preprocess", "max_batch_size": 0,
                       "inputs": [{"name": "images", "datatype": "BYTES", "dims": [-1]}],
                       "outputs": [{"name": "pixels", "datatype": "FP32", "dims": [-1, 3, 224, 224]}],
                       "default_timeout_us": 60_000_000,
                       "pipeline": [
                           {"stage": "fetch", "parameters": {"allow": ["127.0.0.1/32"]},
                            "inputs": {"images": "images"}, "outputs": {"images": "encoded"}},
                           {"stage": "preprocess",
                            "parameters": {"threads": os.cpu_count(), "shrink_to": shrink},
                            "inputs": {"images": "encoded"}, "outputs": {"pixels": "pixels"}}]}]}
    path = os.path.join(folder, f"actorserve-{shrink}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return start([os.path.join(ROOT, "build/app/actorserve"), "serve", "--config", path], port)


def kserve_body(urls):
    return json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(urls)],
                                   "data": urls}],
                       "outputs": [{"name": "pixels", "parameters": {"binary_data": True}}]})


async def load(url, make_body, urls, per_request, conc, seconds):
    latencies, errors = [], 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=conc + 4),
            timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def client(k):
            nonlocal errors
            i = k * per_request
            while time.monotonic() < end:
                batch = [urls[(i + j) % len(urls)] for j in range(per_request)]
                i += per_request * conc
                t0 = time.monotonic()
                # (identity: aiohttp asks for gzip by default, and a node answers it with its
                # compression_level; float tensors shrink ~7% for ~40 ms per MB of CPU)
                async with session.post(url, data=make_body(batch),
                                        headers={"Accept-Encoding": "identity"}) as r:
                    body = await r.read()
                    if r.status != 200 or len(body) < per_request * 3 * 224 * 224 * 4:
                        errors += 1
                        continue
                latencies.append(time.monotonic() - t0)
        await asyncio.gather(*(client(k) for k in range(conc)))
    lat = np.array(latencies) * 1000
    return {"images_s": len(latencies) * per_request / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
            "errors": errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--per-request", type=int, default=32)
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    folder = tempfile.mkdtemp(prefix="image-bench-")
    os.chmod(folder, 0o755)
    www = os.path.join(folder, "www")
    os.mkdir(www)
    files = make_images(www)
    web_port = free_port()
    web = nginx(folder, web_port)
    urls = [f"http://127.0.0.1:{web_port}/{os.path.basename(f)}" for f in files]
    print(f"image_bench: {len(files)} JPEGs ({', '.join(f'{w}x{h}' for w, h in SIZES)}), "
          f"{args.per_request} URLs per request, {args.seconds:.0f} s per point, "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    try:
        ceiling = subprocess.run([os.path.join(ROOT, "build/examples/bench/actorserve-decode-ceiling"),
                                  "5", str(os.cpu_count()), *files],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(ceiling, flush=True)
        servers = [("actorserve (exact)", lambda p: actorserve(folder, p, 0),
                    lambda p: f"http://127.0.0.1:{p}/v2/models/preprocess/infer", kserve_body),
                   ("actorserve (shrink_to 256)", lambda p: actorserve(folder, p, 256),
                    lambda p: f"http://127.0.0.1:{p}/v2/models/preprocess/infer", kserve_body),
                   ("aiohttp + Pillow, process pool",
                    lambda p: start([sys.executable, os.path.join(ROOT, "examples/bench/peers/aiohttp_pillow.py"),
                                     str(p), str(os.cpu_count())], p),
                    lambda p: f"http://127.0.0.1:{p}/preprocess",
                    lambda batch: json.dumps({"urls": batch}))]
        for name, launch, url, body in servers:
            port = free_port()
            proc = launch(port)
            try:
                asyncio.run(load(url(port), body, urls, args.per_request, 1, 2))  # (warm-up)
                for c in concs:
                    r = asyncio.run(load(url(port), body, urls, args.per_request, c, args.seconds))
                    rows.append((name, c, r))
                    print(f"{name:32s} c={c:<3d} {r['images_s']:8.1f} images/s  "
                          f"p50 {r['p50_ms']:8.1f} ms  p99 {r['p99_ms']:8.1f} ms  "
                          f"errors {r['errors']}", flush=True)
            finally:
                stop(proc)
    finally:
        stop(web)
    peer = {c: r for n, c, r in rows if n.startswith("aiohttp")}
    for n, c, r in rows:
        if n.startswith("actorserve") and c in peer and peer[c]["images_s"] > 0:
            print(f"ratio {n:28s} c={c:<3d} {r['images_s'] / peer[c]['images_s']:5.2f}x the peer's "
                  f"images/s (target >= 5x), p99 {r['p99_ms']:.0f} vs {peer[c]['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
