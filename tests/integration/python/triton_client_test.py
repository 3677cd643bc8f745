#!/usr/bin/env python3
"""NVIDIA Triton's own Python HTTP client (PyPI tritonclient) against a running actorserve:
health, metadata, model configuration, the repository index, JSON and binary tensors (also with
requests and responses gzip- and deflate-compressed, the responses checked with Python's own gzip
and zlib), tensors in system shared memory (Triton's own shared memory helpers), classification,
unloading and loading the model, and an error.
The server must allow shared memory (server.http.allow_shared_memory). Exits non-zero on any
mismatch.

usage: triton_client_test.py HOST:PORT REFERENCE_JSON
"""
import gzip
import json
import os
import sys
import urllib.request
import zlib

import numpy as np
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException


def main():
    url, reference = sys.argv[1], sys.argv[2]
    ref = json.load(open(reference))
    x = np.array(ref["input"], dtype=np.float32)
    want = np.array(ref["logits"], dtype=np.float32)
    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "not live"
    assert client.is_server_ready(), "not ready"
    assert client.is_model_ready("mlp"), "mlp not ready"
    meta = client.get_model_metadata("mlp")
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}, meta
    config = client.get_model_config("mlp")
    assert config["max_batch_size"] == 64, config
    assert config["input"][0] == {"name": "input", "data_type": "TYPE_FP32", "dims": [64]}, config
    assert config["instance_group"][0]["kind"] == "KIND_CPU", config
    index = client.get_model_repository_index()
    assert index == [{"name": "mlp", "version": "1", "state": "READY"}], index

    # JSON and binary tensors, each also with the request body compressed by the client (the
    # response may come back uncompressed: the client reads either).
    for binary, compression in [(b, c) for b in (False, True) for c in (None, "gzip", "deflate")]:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = httpclient.InferRequestedOutput("logits", binary_data=binary)
        result = client.infer("mlp", [inp], outputs=[out], request_id="triton-client",
                              request_compression_algorithm=compression,
                              response_compression_algorithm=compression)
        got = result.as_numpy("logits")
        assert got.shape == want.shape, (got.shape, want.shape)
        assert np.allclose(got, want, rtol=1e-4, atol=1e-5), np.abs(got - want).max()
        assert result.get_response()["id"] == "triton-client"

    # A batch of 64 rows (the reference's 8, 8 times): its answer (~8 KB of JSON) is large enough
    # to be compressed. Python's own gzip and zlib read what the server sends; the client gets
    # the same numbers.
    rows = 64 // x.shape[0]
    xs, ws = np.tile(x, (rows, 1)), np.tile(want, (rows, 1))
    body = json.dumps({"inputs": [{"name": "input", "shape": list(xs.shape), "datatype": "FP32",
                                   "data": xs.flatten().tolist()}]}).encode()
    plain = None
    for accept, unpack in [(None, None), ("gzip", gzip.decompress), ("deflate", zlib.decompress),
                           ("br, gzip;q=0.5", gzip.decompress), ("gzip;q=0", None)]:
        req = urllib.request.Request(f"http://{url}/v2/models/mlp/infer", data=body,
                                     headers={"Accept-Encoding": accept} if accept else {})
        with urllib.request.urlopen(req) as res:
            raw = res.read()
            coding = res.headers.get("Content-Encoding")
            assert res.headers.get("Vary") == "Accept-Encoding", res.headers
        assert coding == (accept.split(",")[-1].split(";")[0].strip() if unpack else None), \
            (accept, coding)
        text = unpack(raw) if unpack else raw
        if unpack:
            assert len(raw) < len(text) / 2, (accept, len(raw), len(text))
        got = np.array(json.loads(text)["outputs"][0]["data"], dtype=np.float32).reshape(ws.shape)
        assert np.allclose(got, ws, rtol=1e-4, atol=1e-5), accept
        plain = plain or text
        assert text == plain, accept
    for binary, compression in [(False, "gzip"), (True, "deflate")]:
        inp = httpclient.InferInput("input", list(xs.shape), "FP32")
        inp.set_data_from_numpy(xs, binary_data=binary)
        out = httpclient.InferRequestedOutput("logits", binary_data=binary)
        result = client.infer("mlp", [inp], outputs=[out],
                              response_compression_algorithm=compression)
        assert np.allclose(result.as_numpy("logits"), ws, rtol=1e-4, atol=1e-5), compression

    # System shared memory, as Triton's clients use it: the input in one region, the output
    # written by the server into another; the response only describes it.
    assert "system_shared_memory" in client.get_server_metadata()["extensions"]
    key_in, key_out = f"/actorserve-in-{os.getpid()}", f"/actorserve-out-{os.getpid()}"
    h_in = shm.create_shared_memory_region("in", key_in, x.nbytes)
    h_out = shm.create_shared_memory_region("out", key_out, want.nbytes)
    try:
        shm.set_shared_memory_region(h_in, [x])
        client.unregister_system_shared_memory()
        client.register_system_shared_memory("in", key_in, x.nbytes)
        client.register_system_shared_memory("out", key_out, want.nbytes)
        status = client.get_system_shared_memory_status()
        assert sorted((r["name"], r["key"], r["byte_size"]) for r in status) == \
            [("in", key_in, x.nbytes), ("out", key_out, want.nbytes)], status
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_shared_memory("in", x.nbytes)
        out = httpclient.InferRequestedOutput("logits", binary_data=True)
        out.set_shared_memory("out", want.nbytes)
        result = client.infer("mlp", [inp], outputs=[out])
        described = result.get_output("logits")
        assert "data" not in described, described
        assert described["parameters"]["shared_memory_byte_size"] == want.nbytes, described
        got = shm.get_contents_as_numpy(h_out, np.float32, described["shape"])
        assert np.allclose(got, want, rtol=1e-4, atol=1e-5), np.abs(got - want).max()
        client.unregister_system_shared_memory("in")
        assert [r["name"] for r in client.get_system_shared_memory_status()] == ["out"]
        client.unregister_system_shared_memory()
        assert client.get_system_shared_memory_status() == []
    finally:
        shm.destroy_shared_memory_region(h_in)
        shm.destroy_shared_memory_region(h_out)

    # Classification (class_count): the top classes per row as "value:index:label" strings, the
    # labels from the deployment's file ("class0" ... "class9").
    assert "classification" in client.get_server_metadata()["extensions"]
    for binary in (False, True):
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = httpclient.InferRequestedOutput("logits", binary_data=binary, class_count=3)
        got = client.infer("mlp", [inp], outputs=[out]).as_numpy("logits")
        assert got.shape == (x.shape[0], 3), got.shape
        for row, classes in zip(want, got):
            top = np.argsort(-row, kind="stable")[:3]
            parsed = [c.decode() if isinstance(c, bytes) else c for c in classes]
            assert [int(c.split(":")[1]) for c in parsed] == list(top), (parsed, top)
            assert [c.split(":")[2] for c in parsed] == [f"class{i}" for i in top], parsed
            assert np.allclose([float(c.split(":")[0]) for c in parsed], row[top], rtol=1e-5)

    # Model control: unloaded, the model is not ready and refuses requests; loaded, it serves.
    client.unload_model("mlp")
    assert not client.is_model_ready("mlp")
    index = client.get_model_repository_index()
    assert index[0]["state"] == "UNAVAILABLE" and "unloaded" in index[0]["reason"], index
    client.load_model("mlp")
    assert client.is_model_ready("mlp")
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert np.allclose(client.infer("mlp", [inp]).as_numpy("logits"), want, rtol=1e-4, atol=1e-5)

    # The client's priority= reaches the server (the MLP has no priority levels: refused by name).
    try:
        client.infer("mlp", [inp], priority=1)
        raise AssertionError("a priority was accepted by a model without priority levels")
    except InferenceServerException as e:
        assert "has no priority levels" in str(e), str(e)

    bad = httpclient.InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    try:
        client.infer("mlp", [bad])
        raise AssertionError("a wrong shape was accepted")
    except InferenceServerException as e:
        assert "expected shape [-1, 64]" in str(e), str(e)
    print("triton client: ok")


if __name__ == "__main__":
    main()
