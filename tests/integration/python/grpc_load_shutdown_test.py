#!/usr/bin/env python3
"""A model load over gRPC (Triton's client) in progress when the node is told to stop: the load
(a reload of the serving model) waits for a slow request of the model to drain, then for the
worker to warm up again, when this script sends the node SIGTERM. The load
must be answered UNAVAILABLE ("shutting down"), the slow request 200, and the node must exit
well before the load's own limit. Prints "load: ..." and "infer: ..." and exits non-zero on any
mismatch.

usage: grpc_load_shutdown_test.py GRPC_HOST:PORT HTTP_HOST:PORT PID
"""
import json
import os
import signal
import sys
import threading
import time
import urllib.request

import tritonclient.grpc as grpcclient

results = {}


def slow_infer(http):
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}).encode()
    req = urllib.request.Request(f"http://{http}/v2/models/slow/infer", body)
    try:
        results["infer"] = urllib.request.urlopen(req, timeout=30).status
    except Exception as e:  # (the test reports what came back)
        results["infer"] = repr(e)


def load(url):
    try:
        grpcclient.InferenceServerClient(url=url).load_model("slow", client_timeout=60)
        results["load"] = "ok"
    except Exception as e:
        results["load"] = str(e)


def exited(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # (A zombie until the test reaps it: look at its state.)
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def main():
    url, http, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    infer = threading.Thread(target=slow_infer, args=(http,))
    infer.start()
    time.sleep(0.3)  # (the request is in flight: the load waits for it)
    loading = threading.Thread(target=load, args=(url,))
    loading.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    stopped = time.time()
    loading.join()
    infer.join()
    while not exited(pid) and time.time() - stopped < 20:
        time.sleep(0.05)
    took = time.time() - stopped
    print("load:", results["load"])
    print("infer:", results["infer"])
    print(f"node exited {took:.1f} s after SIGTERM")
    assert "UNAVAILABLE" in results["load"] and "shutting down" in results["load"], results
    assert results["infer"] == 200, results
    assert exited(pid), "the node is still running 20 s after SIGTERM"
    print("grpc load at shutdown: ok")


if __name__ == "__main__":
    main()
