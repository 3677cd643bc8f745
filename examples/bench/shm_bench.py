#!/usr/bin/env python3
"""Large tensors from a client on the same machine: binary HTTP against system shared memory.

Starts actorserve (build/app/actorserve, loopback) with the `scale` example backend (y = 2x + 1,
no compute to speak of) on an FP32 input and output of --floats elements, then sends the same
requests with NVIDIA Triton's Python client (tritonclient) from --clients threads: the tensor in
the body and the answer in the response (binary tensor data extension), or both in shared
memory regions the client registered (system shared memory extension). Prints requests/s and
latency percentiles for each and checks every answer.

usage: .venv/bin/python examples/bench/shm_bench.py [--floats 1048576] [--seconds 5] [--clients 1]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm


def serve(floats, port):
    cfg = {"server": {"http": {"port": port, "io_threads": 2, "allow_shared_memory": True,
                               "max_body_bytes": 64 * floats + (1 << 20)},
                      "log_level": "warn"},
           "models": [{"name": "scale", "backend": "scale", "max_batch_size": 8,
                       "inputs": [{"name": "x", "datatype": "FP32", "dims": [floats]}],
                       "outputs": [{"name": "y", "datatype": "FP32", "dims": [floats]}],
                       "batching": {"max_queue_delay_us": 0},
                       "parameters": {"factor": 2, "bias": 1}}]}
    path = os.path.join(tempfile.mkdtemp(), "shm_bench.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    proc = subprocess.Popen(["build/app/actorserve", "serve", "--config", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1000):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
            return proc
        except OSError:
            time.sleep(0.01)
    proc.kill()
    sys.exit("actorserve did not become ready")


def run(label, clients, seconds, make_call):
    latencies, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def loop(i):
        call = make_call(i)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    ms = np.array(latencies) * 1e3
    print(f"{label:<22} {len(ms) / elapsed:9.1f} req/s   p50 {np.percentile(ms, 50):7.2f} ms"
          f"   p99 {np.percentile(ms, 99):7.2f} ms   ({len(ms)} requests)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floats", type=int, default=1 << 20)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--port", type=int, default=18420)
    a = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    proc = serve(a.floats, a.port)
    url = f"127.0.0.1:{a.port}"
    x = np.random.default_rng(1).standard_normal((1, a.floats), dtype=np.float32)
    want = 2 * x + 1
    regions = []
    try:
        print(f"one FP32 tensor of {a.floats} elements ({x.nbytes / 1e6:.1f} MB) each way, "
              f"{a.clients} client thread(s), {a.seconds:.0f} s each")

        def binary(i):
            client = httpclient.InferenceServerClient(url=url, connection_timeout=60,
                                                      network_timeout=60)
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            out = httpclient.InferRequestedOutput("y", binary_data=True)

            def call():
                y = client.infer("scale", [inp], outputs=[out]).as_numpy("y")
                assert np.array_equal(y, want)
            return call

        def shared(i):
            client = httpclient.InferenceServerClient(url=url, connection_timeout=60,
                                                      network_timeout=60)
            names = (f"in{i}", f"out{i}")
            keys = (f"/actorserve-bench-in{i}-{os.getpid()}", f"/actorserve-bench-out{i}-{os.getpid()}")
            h_in = shm.create_shared_memory_region(names[0], keys[0], x.nbytes)
            h_out = shm.create_shared_memory_region(names[1], keys[1], x.nbytes)
            regions.extend([h_in, h_out])
            client.register_system_shared_memory(names[0], keys[0], x.nbytes)
            client.register_system_shared_memory(names[1], keys[1], x.nbytes)
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_shared_memory(names[0], x.nbytes)
            out = httpclient.InferRequestedOutput("y", binary_data=True)
            out.set_shared_memory(names[1], x.nbytes)

            def call():
                shm.set_shared_memory_region(h_in, [x]) # (the client's own copy, counted)
                r = client.infer("scale", [inp], outputs=[out])
                y = shm.get_contents_as_numpy(h_out, np.float32, r.get_output("y")["shape"])
                assert np.array_equal(y, want)
            return call

        run("binary HTTP", a.clients, a.seconds, binary)
        run("system shared memory", a.clients, a.seconds, shared)
    finally:
        for h in regions:
            shm.destroy_shared_memory_region(h)
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
