#!/usr/bin/env python3
"""NVIDIA Triton's own Python HTTP client (PyPI tritonclient) against a running actorserve:
health, metadata, model configuration, the repository index, JSON and binary tensors (also gzip- and deflate-compressed), and an error. Exits non-zero on any mismatch.

usage: triton_client_test.py HOST:PORT REFERENCE_JSON
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient
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
