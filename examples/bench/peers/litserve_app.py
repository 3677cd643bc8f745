#!/usr/bin/env python3
"""LitServe (Lightning AI) serving the same TorchScript model with its own dynamic batching
(max_batch_size, batch_timeout) and WORKERS processes, at the same KServe v2 path as actorserve,
so the same clients load both. LitServe hands decode_request the parsed JSON: the peer takes
JSON requests only (the MLP's); binary tensors (Inference-Header-Content-Length) are not its
protocol.

usage: litserve_app.py PORT MODEL_PATH MODEL_NAME OUTPUT_NAME MAX_BATCH WINDOW_US WORKERS THREADS

Prints "litserve: ready" once it answers on /health; stops on SIGTERM (it leads its own process
group, so the launcher stops its workers with it).
"""
import os
import sys
import threading
import time
import urllib.request

import numpy as np
import torch
import litserve as ls


class KServeAPI(ls.LitAPI):
    def __init__(self, path, name, output, threads, max_batch, window):
        super().__init__(max_batch_size=max_batch, batch_timeout=window,
                         api_path=f"/v2/models/{name}/infer")
        self.path, self.name, self.output, self.threads = path, name, output, threads

    def setup(self, device):
        torch.set_num_threads(self.threads)
        self.model = torch.jit.load(self.path, map_location="cpu").eval()

    def decode_request(self, request):
        tensor = request["inputs"][0]
        return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])

    def batch(self, inputs):
        return np.concatenate(inputs)

    def predict(self, x):
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()

    def unbatch(self, output):
        return [output[i:i + 1] for i in range(output.shape[0])]

    def encode_response(self, output):
        return {"model_name": self.name, "outputs": [{
            "name": self.output, "datatype": "FP32", "shape": list(output.shape),
            "data": output.ravel().tolist()}]}


def announce_when_ready(port):
    for _ in range(1200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            print("litserve: ready", flush=True)
            return
        except Exception:
            time.sleep(0.1)


def main():
    port, path, name, output = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    max_batch, window, workers = int(sys.argv[5]), int(sys.argv[6]) / 1e6, int(sys.argv[7])
    threads = int(sys.argv[8])
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    api = KServeAPI(path, name, output, threads, max_batch, window)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=workers,
                          timeout=30)
    threading.Thread(target=announce_when_ready, args=(port,), daemon=True).start()
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
