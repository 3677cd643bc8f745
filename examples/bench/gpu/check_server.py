#!/usr/bin/env python3
"""End-to-end check of a GPU deployment: sends raw uint8 images (binary extension) to a running
server, one per request and concurrently, and compares the logits with the same TorchScript model
run directly in PyTorch on the same images (normalized in PyTorch). Prints one JSON line; exits 1
when any answer is missing or off by more than fp16 allows.

usage: check_server.py PORT MODEL_NAME MODEL_PATH [N]
"""
import concurrent.futures
import http.client
import json
import sys

import numpy as np
import torch


def infer(port, model, img):
    head = json.dumps({"inputs": [{"name": "image", "shape": [1, *img.shape], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": img.nbytes}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", f"/v2/models/{model}/infer", head + img.tobytes(),
              {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"})
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {body[:300]!r}")
    jl = int(r.getheader("Inference-Header-Content-Length"))
    return np.frombuffer(body[jl:], dtype=np.float32)


def main():
    port, model, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        got = list(ex.map(lambda i: infer(port, model, imgs[i]), range(n)))
    dev = torch.device("cuda:0")
    net = torch.jit.load(path, map_location=dev).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    with torch.inference_mode():
        x = torch.from_numpy(imgs).to(dev).permute(0, 3, 1, 2).float()
        x = ((x / 255.0 - mean) / std).half().contiguous(memory_format=torch.channels_last)
        want = net(x).float().cpu().numpy()
    worst = max(float(np.max(np.abs(g - w) / (np.abs(w) + 1.0))) for g, w in zip(got, want))
    ok = worst < 0.05 and len(got) == n
    print(json.dumps({"check": "server logits vs PyTorch", "requests": n, "answered": len(got),
                      "max_rel_diff": worst, "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
