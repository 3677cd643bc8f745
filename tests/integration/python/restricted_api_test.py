#!/usr/bin/env python3
"""Restricted API groups (server.restricted_apis) with Triton's own clients, over HTTP and gRPC:
the node restricts "model-repository" and "statistics" to the header admin-key: s3cret. Calls
without the key, or with a wrong one, are refused (HTTP 403, gRPC PERMISSION_DENIED) naming the
group; with it they are served; inference stays open. Prints "restricted api: ok" on success.

usage: restricted_api_test.py GRPC_HOST:PORT HTTP_HOST:PORT
"""
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

KEY = {"admin-key": "s3cret"}
WRONG = {"admin-key": "s3cret-not"}


def refused(call, what):
    try:
        call()
    except InferenceServerException as e:
        text = str(e)
        assert "is restricted on this server: send 'admin-key'" in text, f"{what}: {text}"
        return
    raise AssertionError(f"{what}: served without the key")


def check(client, name, status_hint):
    refused(lambda: client.get_model_repository_index(), f"{name} index without a key")
    refused(lambda: client.get_model_repository_index(headers=WRONG), f"{name} index, wrong key")
    refused(lambda: client.unload_model("scale"), f"{name} unload without a key")
    refused(lambda: client.get_inference_statistics("scale"), f"{name} statistics without a key")
    client.get_model_repository_index(headers=KEY)
    client.get_inference_statistics("scale", headers=KEY)
    assert client.is_model_ready("scale"), f"{name}: health is not restricted"
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    mod = grpcclient if client.__class__.__module__.startswith("tritonclient.grpc") else httpclient
    inp = mod.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)
    out = client.infer("scale", [inp]).as_numpy("y")
    assert out.tolist() == [[3, 5, 7, 9]], f"{name}: inference {out}"
    print(f"{name}: restricted groups refused without the key ({status_hint}), served with it")


def main():
    grpc_addr, http_addr = sys.argv[1], sys.argv[2]
    check(httpclient.InferenceServerClient(http_addr), "http", "403")
    check(grpcclient.InferenceServerClient(grpc_addr), "grpc", "PERMISSION_DENIED")
    # The status codes themselves.
    try:
        grpcclient.InferenceServerClient(grpc_addr).get_model_repository_index()
    except InferenceServerException as e:
        assert e.status() == "StatusCode.PERMISSION_DENIED", e.status()
    print("restricted api: ok")


if __name__ == "__main__":
    main()
