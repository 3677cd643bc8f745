#!/usr/bin/env python3
"""Loads (reloads) a model while clients keep sending it requests, and prints what they saw:
answers by status, how often the model answered ready, and how long the load took. With the
model's file replaced first, this is a model update in place.

usage: reload_under_load.py HOST:PORT MODEL [--clients N] [--before S] [--after S] [--body FILE]

The request is one row of the model's first input, zeros, as JSON (from its metadata), unless
--body names a KServe v2 JSON body to send.
"""
import argparse
import collections
import json
import threading
import time
import urllib.error
import urllib.request


def zeros_body(base, model):
    meta = json.load(urllib.request.urlopen(f"{base}/v2/models/{model}"))
    inputs = []
    for t in meta["inputs"]:
        shape = [1 if d < 0 else d for d in t["shape"]]
        n = 1
        for d in shape:
            n *= d
        inputs.append({"name": t["name"], "shape": shape, "datatype": t["datatype"],
                       "data": [0] * n})
    return json.dumps({"inputs": inputs}).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("address")
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--before", type=float, default=1.0, help="seconds of load before the load")
    ap.add_argument("--after", type=float, default=1.0, help="seconds of load after it")
    ap.add_argument("--body", help="a KServe v2 JSON request body")
    a = ap.parse_args()
    base = f"http://{a.address}"
    body = open(a.body, "rb").read() if a.body else zeros_body(base, a.model)
    lock = threading.Lock()
    answers, readiness, examples = collections.Counter(), collections.Counter(), {}
    stop = threading.Event()

    def client():
        req = f"{base}/v2/models/{a.model}/infer"
        while not stop.is_set():
            try:
                status = urllib.request.urlopen(urllib.request.Request(req, body), timeout=60).status
                text = ""
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read().decode(errors="replace")[:200]
            except OSError as e:
                status, text = 0, str(e)
            with lock:
                answers[status] += 1
                if status != 200:
                    examples.setdefault(status, text)

    def ready():
        while not stop.is_set():
            try:
                status = urllib.request.urlopen(f"{base}/v2/models/{a.model}/ready", timeout=5).status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = 0
            with lock:
                readiness[status] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    threads.append(threading.Thread(target=ready))
    for t in threads:
        t.start()
    time.sleep(a.before)
    t0 = time.time()
    try:
        r = urllib.request.urlopen(urllib.request.Request(
            f"{base}/v2/repository/models/{a.model}/load", b""), timeout=3600)
        load = f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        load = f"{e.code} {e.read().decode()}"
    took = time.time() - t0
    time.sleep(a.after)
    stop.set()
    for t in threads:
        t.join()
    print(f"load: {load} in {took:.2f} s")
    print(f"answers by status ({a.clients} clients, {a.before + took + a.after:.1f} s): "
          f"{dict(answers)}")
    for status, text in examples.items():
        print(f"  {status}: {text}")
    print(f"readiness polls by status: {dict(readiness)}")


if __name__ == "__main__":
    main()
