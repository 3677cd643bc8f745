#!/usr/bin/env python3
"""NVIDIA Triton's own Python gRPC client (PyPI tritonclient[grpc]) against a running actorserve
serving "scale" (y = 2x + 1, FP32 [batch, 4]) and "slow" (the same, 300 ms per batch): health,
metadata, raw and typed (protobuf contents) tensors, requested outputs, 200 concurrent calls, a
stream of 100 requests (ModelStreamInfer),
every error status, a client deadline the server keeps, a message over the size limit, and
Triton's extensions over gRPC: model configuration and statistics (equal to the HTTP front's),
the repository index, unloading and loading a model.
Exits non-zero on any mismatch.

usage: triton_grpc_test.py GRPC_HOST:PORT HTTP_HOST:PORT
"""
import json
import queue
import sys
import time
import urllib.request

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def expect_error(status, fragment, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except InferenceServerException as e:
        assert e.status() == status, (e.status(), e.message())
        assert fragment in e.message(), e.message()
        return
    raise AssertionError(f"expected {status} ({fragment})")


def metric(http, name):
    text = urllib.request.urlopen(f"http://{http}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def get_json(http, path):
    return json.load(urllib.request.urlopen(f"http://{http}{path}"))


def extensions(c, stub, http):
    """Triton's model configuration, statistics and repository extensions over gRPC."""
    # The configuration: Triton's ModelConfig message, the same as the HTTP front's JSON.
    cfg = c.get_model_config("scale").config
    assert cfg.name == "scale" and cfg.max_batch_size == 8, cfg
    assert cfg.input[0].name == "x" and list(cfg.input[0].dims) == [4], cfg
    assert model_config_pb2.DataType.Name(cfg.output[0].data_type) == "TYPE_FP32", cfg
    assert list(cfg.version_policy.specific.versions) == [1], cfg
    assert cfg.dynamic_batching.default_queue_policy.allow_timeout_override, cfg
    assert cfg.parameters["factor"].string_value == "2", cfg
    as_json = c.get_model_config("scale", as_json=True)["config"]
    http_cfg = get_json(http, "/v2/models/scale/config")
    for key in ("name", "platform", "backend", "max_batch_size", "instance_group"):
        assert as_json[key] == http_cfg[key], (key, as_json[key], http_cfg[key])
    expect_error("StatusCode.NOT_FOUND", "unknown model 'nope'", c.get_model_config, "nope")
    expect_error("StatusCode.NOT_FOUND", "model 'scale' has no version '7'",
                 c.get_model_config, "scale", "7")

    # Statistics: one model's, everyone's, the HTTP front's numbers.
    stats = c.get_inference_statistics("scale").model_stats
    assert [m.name for m in stats] == ["scale"], stats
    http_stats = get_json(http, "/v2/models/scale/stats")["model_stats"][0]
    assert stats[0].inference_count == http_stats["inference_count"] >= 303, (stats, http_stats)
    success = http_stats["inference_stats"]["success"]["count"]
    assert stats[0].inference_stats.success.count == success, (stats, success)
    assert sum(b.compute_infer.count for b in stats[0].batch_stats) == stats[0].execution_count > 0
    everyone = c.get_inference_statistics().model_stats
    assert sorted(m.name for m in everyone) == ["scale", "slow"], everyone
    expect_error("StatusCode.NOT_FOUND", "unknown model 'nope'", c.get_inference_statistics, "nope")

    # The repository: index, unload (its requests refused by name), load (ready, answering).
    index = {m.name: m for m in c.get_model_repository_index().models}
    assert index["scale"].state == "READY" and index["slow"].state == "READY", index
    c.unload_model("slow")
    index = {m.name: m for m in c.get_model_repository_index().models}
    assert index["slow"].state == "UNAVAILABLE" and "unloaded" in index["slow"].reason, index
    ready = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True)).models
    assert [m.name for m in ready] == ["scale"], ready
    assert not c.is_model_ready("slow")
    inp = grpcclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), np.float32))
    expect_error("StatusCode.NOT_FOUND", "model 'slow' is unloaded", c.infer, "slow", [inp])
    c.load_model("slow")
    assert c.is_model_ready("slow")
    assert np.array_equal(c.infer("slow", [inp]).as_numpy("y"), np.full((1, 4), 3, np.float32))
    # What cannot be done is refused by name.
    expect_error("StatusCode.INVALID_ARGUMENT", "parameter 'config' is not taken",
                 c.load_model, "slow", config="{}")
    expect_error("StatusCode.NOT_FOUND", "unknown model 'nope'", c.unload_model, "nope")
    try:
        stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(repository_name="other"))
        raise AssertionError("a repository other than the deployment's was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert "unknown repository 'other'" in e.details(), e.details()


def main():
    url, http = sys.argv[1], sys.argv[2]
    c = grpcclient.InferenceServerClient(url=url)
    assert c.is_server_live(), "not live"
    assert c.is_server_ready(), "not ready"
    assert c.is_model_ready("scale"), "scale not ready"
    meta = c.get_server_metadata()
    assert meta.name == "actorserve", meta
    m = c.get_model_metadata("scale")
    assert m.inputs[0].name == "x" and list(m.inputs[0].shape) == [-1, 4], m
    assert m.outputs[0].datatype == "FP32", m

    # Raw tensors (what the client sends), a batch of two, the id echoed.
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    inp = grpcclient.InferInput("x", [2, 4], "FP32")
    inp.set_data_from_numpy(x)
    r = c.infer("scale", [inp], request_id="r1",
                outputs=[grpcclient.InferRequestedOutput("y")])
    assert np.array_equal(r.as_numpy("y"), 2 * x + 1), r.as_numpy("y")
    assert r.get_response().id == "r1"

    # Typed contents (fp32_contents), through the protocol's own stub.
    channel = grpc.insecure_channel(url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = service_pb2.ModelInferRequest(model_name="scale")
    t = req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    t.contents.fp32_contents.extend([1, 2, 3, 4])
    res = stub.ModelInfer(req)
    y = np.frombuffer(res.raw_output_contents[0], dtype=np.float32)
    assert list(y) == [3, 5, 7, 9], y

    # 200 calls at once, each answered with its own rows.
    answers = queue.Queue()
    for i in range(200):
        xi = np.full((1, 4), i, dtype=np.float32)
        ii = grpcclient.InferInput("x", [1, 4], "FP32")
        ii.set_data_from_numpy(xi)
        c.async_infer("scale", [ii], lambda result, error, i=i: answers.put((i, result, error)))
    for _ in range(200):
        i, result, error = answers.get(timeout=30)
        assert error is None, error
        assert np.array_equal(result.as_numpy("y"), np.full((1, 4), 2 * i + 1, np.float32))

    # A stream (Triton's ModelStreamInfer): 100 requests in flight on one call, each answered
    # with its own rows and id; a failed one answered with its error; the call ends cleanly
    # once the client stops sending and every answer is in.
    streamed = queue.Queue()
    c.start_stream(callback=lambda result, error: streamed.put((result, error)))
    for i in range(100):
        xi = grpcclient.InferInput("x", [1, 4], "FP32")
        xi.set_data_from_numpy(np.full((1, 4), i, dtype=np.float32))
        c.async_stream_infer("scale", [xi], request_id=f"s{i}")
    c.async_stream_infer("nope", [inp], request_id="s-bad")
    c.stop_stream()  # (waits for the server to end the call)
    got, failed = {}, []
    while not streamed.empty():
        result, error = streamed.get()
        if error is not None:
            failed.append(error.message())
        else:
            got[result.get_response().id] = result.as_numpy("y")
    assert len(got) == 100, len(got)
    for i in range(100):
        assert np.array_equal(got[f"s{i}"], np.full((1, 4), 2 * i + 1, np.float32)), got[f"s{i}"]
    assert failed == ["unknown model 'nope'"], failed

    # Errors: each status with a message naming what was wrong.
    expect_error("StatusCode.NOT_FOUND", "unknown model 'nope'", c.infer, "nope", [inp])
    bad = grpcclient.InferInput("x", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    expect_error("StatusCode.INVALID_ARGUMENT", "input 'x'", c.infer, "scale", [bad])
    expect_error("StatusCode.INVALID_ARGUMENT", "classification is served over HTTP only",
                 c.infer, "scale", [inp],
                 outputs=[grpcclient.InferRequestedOutput("y", class_count=2)])
    expect_error("StatusCode.NOT_FOUND", "unknown model", c.get_model_metadata, "nope")
    # Over server.grpc.max_message_bytes (1 MiB here).
    big = grpcclient.InferInput("x", [70000, 4], "FP32")
    big.set_data_from_numpy(np.zeros((70000, 4), np.float32))
    expect_error("StatusCode.RESOURCE_EXHAUSTED", "", c.infer, "scale", [big])

    # A client deadline becomes the request's: the server gives up on it too (504 in its
    # metrics, or dropped as cancelled), and the model serves on.
    before = (metric(http, 'actorserve_requests_total{model="slow",outcome="deadline_exceeded"}')
              + metric(http, 'actorserve_requests_total{model="slow",outcome="cancelled"}'))
    expect_error("StatusCode.DEADLINE_EXCEEDED", "", c.infer, "slow", [inp], client_timeout=0.1)
    deadline = time.time() + 10
    while time.time() < deadline:
        after = (metric(http, 'actorserve_requests_total{model="slow",outcome="deadline_exceeded"}')
                 + metric(http, 'actorserve_requests_total{model="slow",outcome="cancelled"}'))
        if after > before:
            break
        time.sleep(0.05)
    assert after > before, "the server did not count the call it gave up"
    r = c.infer("slow", [inp], client_timeout=10)
    assert np.array_equal(r.as_numpy("y"), 2 * x + 1)
    assert c.is_server_ready()
    # The calls answered, by status code, in /metrics.
    assert metric(http, 'actorserve_grpc_responses_total{code="0"}') >= 200
    assert metric(http, 'actorserve_grpc_responses_total{code="5"}') == 2  # NOT_FOUND
    assert metric(http, 'actorserve_grpc_responses_total{code="3"}') == 2  # INVALID_ARGUMENT

    extensions(c, stub, http)
    assert metric(http, 'actorserve_grpc_responses_total{code="5"}') == 2 + 5
    assert metric(http, 'actorserve_grpc_responses_total{code="3"}') == 2 + 2
    print("triton grpc client: ok")


if __name__ == "__main__":
    main()
