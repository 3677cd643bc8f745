"""OpenTelemetry tracing end to end: actorserve nodes export their spans over OTLP to a loopback
collector (otlp_receiver.py, in this process) that decodes them with the official definitions
(PyPI opentelemetry-proto); the checks are on the span trees it received.

Usage: tracing_test.py ACTORSERVE_BINARY [images] [queues]
Prints "tracing: ok" when every check passed (a failed check raises and exits non-zero).

Cases: a request's tree (server span -> route, queue, attempt -> batch -> compute) with W3C
traceparent and tracestate answered; a batch span linked to several requests; a pipeline's
steps, each with its model's spans; a retried request's two attempts; a split batch's; gRPC's traceparent metadata and RPC span; sampling (ratio 0 with
parent-based decisions, errors kept); with "images", the image stages' downloads (client spans,
traceparent sent to the origin) and items; with "queues", a Redis stream entry's consumer span;
OTLP over gRPC; a two-node request (the worker node's
compute span in the front's trace); an isolated worker's process, which exports its own
compute span; a dead collector, which costs the node only counted drops.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otlp_receiver  # noqa: E402

BINARY = sys.argv[1]
IMAGES = "images" in sys.argv[2:]  # the image stages are built
QUEUES = "queues" in sys.argv[2:]  # the Redis stream ingress is built (and redis-server is here)
TMP = tempfile.mkdtemp(prefix="actorserve-tracing-")
TRACE = "4bf92f3577b34da6a3ce929d0e0e47"  # + 2 hex digits per case
CALLER_SPAN = "00f067aa0ba902b7"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def eventually(check, timeout=20.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Node:
    """An actorserve process on loopback; `port` its HTTP port (None for a worker node)."""

    def __init__(self, name, config, wait_for="listening on http://", ready=True):
        path = os.path.join(TMP, name + ".json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.log_path = os.path.join(TMP, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BINARY, "serve", "--config", path], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.port = None
        try:
            self.start(name, wait_for, ready)
        except BaseException:
            self.stop()
            raise
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def start(self, name, wait_for, ready):
        if wait_for:
            for line in self.proc.stdout:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    break
            assert self.port, "node " + name + " did not start: " + self.text()
            if ready:  # (a cluster's front is not ready before its workers join)
                eventually(self.ready, 30, "node " + name + " ready")

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/health/ready" % self.port,
                                        timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def post(port, path, body, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body.encode(),
                                 headers=dict(headers or {}, **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return r.read().decode()


def infer_body(data="[1,2,3,4]", params=None):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                        "data": json.loads(data)}]}
    if params:
        body["parameters"] = params
    return json.dumps(body)


def scale_model(**extra):
    m = {"name": "scale", "backend": "scale", "max_batch_size": 8,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
         "parameters": {"factor": 2, "bias": 1}}
    m.update(extra)
    return m


def tracing(endpoint, **extra):
    t = {"endpoint": endpoint, "export_interval_ms": 50}
    t.update(extra)
    return t


def spans_of(trace_id):
    with otlp_receiver.LOCK:
        return [s for s in otlp_receiver.SPANS if s["trace_id"] == trace_id]


def wait_spans(trace_id, names, timeout=20.0):
    """The trace's spans once every name in `names` is among them."""
    def have():
        got = spans_of(trace_id)
        present = [s["name"].split(" ")[0] for s in got]
        return got if all(present.count(n) >= k for n, k in names.items()) else None
    return eventually(have, timeout, "spans %s of trace %s" % (names, trace_id))


def one(spans, kind):
    found = [s for s in spans if s["name"].split(" ")[0] == kind]
    assert len(found) == 1, (kind, [s["name"] for s in spans])
    return found[0]


def series(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def check_tree(node):
    trace = TRACE + "01"
    status, headers, _ = post(node.port, "/v2/models/scale/infer", infer_body(),
                              {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN),
                               "tracestate": "congo=t61rcWkgMzE"})
    assert status == 200, status
    answered = headers["traceparent"].split("-")
    assert answered[1] == trace and answered[3] == "01", headers["traceparent"]
    assert headers.get("tracestate") == "congo=t61rcWkgMzE", headers
    spans = wait_spans(trace, {"POST": 1, "route": 1, "queue": 1, "infer": 1, "batch": 1,
                               "compute": 1})
    server = one(spans, "POST")
    assert server["span_id"] == answered[2], (server, answered)
    assert server["parent_span_id"] == CALLER_SPAN
    assert server["kind"] == "SPAN_KIND_SERVER"
    assert server["name"] == "POST /v2/models/{model_name}/infer"
    a = server["attributes"]
    assert a["http.request.method"] == "POST" and a["http.response.status_code"] == 200, a
    assert a["http.route"] == "/v2/models/{model_name}/infer" and a["url.path"] == "/v2/models/scale/infer"
    assert server["resource"]["service.name"] == "tracing-node", server["resource"]
    for kind in ("route", "queue", "infer"):
        child = one(spans, kind)
        assert child["parent_span_id"] == server["span_id"], (kind, child)
        assert server["start"] <= child["start"] <= child["end"] <= server["end"], (kind, child)
    attempt, batch, compute = one(spans, "infer"), one(spans, "batch"), one(spans, "compute")
    assert attempt["attributes"]["actorserve.attempt.outcome"] == "answered"
    assert batch["parent_span_id"] == attempt["span_id"]
    assert compute["parent_span_id"] == batch["span_id"]
    assert {"trace_id": trace, "span_id": attempt["span_id"]} in batch["links"], batch["links"]
    assert {"trace_id": trace, "span_id": batch["span_id"]} in attempt["links"]
    assert compute["attributes"]["actorserve.worker"].startswith("scale/cpu/")
    assert all(s["status"] == "STATUS_CODE_UNSET" for s in spans), spans


def check_batch_links(node):
    traces = [TRACE + "%02x" % (0x10 + i) for i in range(6)]
    results = []

    def send(trace):
        results.append(post(node.port, "/v2/models/scale/infer", infer_body(),
                            {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})[0])
    clients = [threading.Thread(target=send, args=(t,)) for t in traces]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert results == [200] * 6, results
    for t in traces:
        wait_spans(t, {"infer": 1, "POST": 1})
    with otlp_receiver.LOCK:
        batches = [s for s in otlp_receiver.SPANS if s["name"] == "batch scale"
                   and any(l["trace_id"] in traces for l in s["links"])]
    shared = [b for b in batches if len({l["trace_id"] for l in b["links"]}) >= 2]
    assert shared, "no batch span links requests of two traces: %s" % batches
    b = shared[0]
    assert b["attributes"]["actorserve.batch.requests"] == len(b["links"]), b
    for link in b["links"]:  # each link names that request's attempt, which links back
        attempt = [s for s in spans_of(link["trace_id"]) if s["span_id"] == link["span_id"]]
        assert attempt and attempt[0]["name"] == "infer scale", link
        assert {"trace_id": b["trace_id"], "span_id": b["span_id"]} in attempt[0]["links"]


def check_retry(node):
    armed = post(node.port, "/v2/admin/faults",
                 json.dumps({"model": "scale", "worker": "scale/cpu/0", "fault": "crash"}))
    assert armed[0] == 200, armed
    retried = None
    for i in range(8):
        trace = TRACE + "%02x" % (0x20 + i)
        status, _, _ = post(node.port, "/v2/models/scale/infer", infer_body(),
                            {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        assert status == 200, status
        spans = wait_spans(trace, {"POST": 1, "infer": 1})
        if len([s for s in spans if s["name"] == "infer scale"]) == 2:
            retried = spans
            break
    assert retried, "no request was retried after the crash"
    attempts = sorted((s for s in retried if s["name"] == "infer scale"),
                      key=lambda s: s["attributes"]["actorserve.attempt"])
    first, second = attempts
    assert first["attributes"]["actorserve.attempt"] == 1 and second["attributes"]["actorserve.attempt"] == 2
    assert first["status"] == "STATUS_CODE_ERROR" and first["attributes"]["actorserve.attempt.outcome"] == "failed"
    assert "scale/cpu/0" in first["status_message"], first  # (why it failed: the worker's crash)
    assert second["status"] == "STATUS_CODE_UNSET" and second["attributes"]["actorserve.worker"] == "scale/cpu/1"
    server = one(retried, "POST")
    assert first["parent_span_id"] == second["parent_span_id"] == server["span_id"]
    assert len([s for s in retried if s["name"] == "queue scale"]) == 2


def check_pipeline(node):
    trace = TRACE + "70"
    body = json.dumps({"inputs": [{"name": "in", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]})
    status, _, answer = post(node.port, "/v2/models/chain/infer", body,
                             {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
    assert status == 200, answer
    spans = wait_spans(trace, {"POST": 1, "gateway": 3, "pipeline": 1, "step": 2, "queue": 2,
                               "infer": 2, "batch": 2, "compute": 2})
    server, pipeline = one(spans, "POST"), one(spans, "pipeline")
    by_id = {s["span_id"]: s for s in spans}
    gateways = [s for s in spans if s["name"].startswith("gateway")]
    assert [g for g in gateways if g["name"] == "gateway chain"][0]["parent_span_id"] == server["span_id"]
    assert pipeline["parent_span_id"] == server["span_id"]
    steps = sorted((s for s in spans if s["name"].startswith("step")),
                   key=lambda s: s["attributes"]["actorserve.step"])
    assert [s["name"] for s in steps] == ["step 0 (model 'scale')", "step 1 (model 'scale')"], steps
    assert steps[0]["end"] <= steps[1]["start"]  # (step 1 takes step 0's output)
    for step in steps:
        assert step["parent_span_id"] == pipeline["span_id"]
        children = [s for s in spans if s["parent_span_id"] == step["span_id"]]
        assert sorted(s["name"] for s in children) == ["gateway scale", "infer scale", "queue scale"], children
    for compute in (s for s in spans if s["name"] == "compute scale"):
        batch = by_id[compute["parent_span_id"]]
        attempt = by_id[batch["parent_span_id"]]
        assert by_id[attempt["parent_span_id"]]["name"].startswith("step")


def check_split(node):
    """A batch the backend throws on is split to find the request at fault: each request's
    attempt in the failed batch ends "split", the innocent ones' next attempts answer."""
    traces = [TRACE + "%02x" % (0x80 + i) for i in range(4)]
    results = {}

    def send(i, trace):
        params = {"actorserve_fault": "throw"} if i == 0 else None
        results[trace] = post(node.port, "/v2/models/scale/infer", infer_body(params=params),
                              {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})[0]
    clients = [threading.Thread(target=send, args=(i, t)) for i, t in enumerate(traces)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert results[traces[0]] == 500 and all(results[t] == 200 for t in traces[1:]), results
    split = []
    for t in traces[1:]:
        spans = wait_spans(t, {"POST": 1})
        outcomes = [s["attributes"]["actorserve.attempt.outcome"]
                    for s in sorted((s for s in spans if s["name"] == "infer scale"),
                                    key=lambda s: s["start"])]
        assert outcomes[-1] == "answered", outcomes
        if "split" in outcomes:
            split.append(t)
            failed = [s for s in spans if s["name"] == "infer scale"
                      and s["attributes"]["actorserve.attempt.outcome"] == "split"][0]
            assert failed["status"] == "STATUS_CODE_ERROR" and "fault injection" in failed["status_message"], failed
    assert split, "no innocent request shared the poisoned batch"
    poisoned = wait_spans(traces[0], {"POST": 1})
    server = one(poisoned, "POST")
    assert server["status"] == "STATUS_CODE_ERROR" and server["attributes"]["http.response.status_code"] == 500


def check_images(endpoint):
    """The image pipeline's stages: each download a client span whose id the origin received in
    its traceparent, each preprocessed item a span of its own, under its step's span."""
    import io
    from http.server import BaseHTTPRequestHandler
    import PIL.Image

    b = io.BytesIO()
    PIL.Image.new("RGB", (64, 48), (200, 30, 90)).save(b, format="JPEG")
    jpeg = b.getvalue()
    seen = []

    class Origin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("traceparent"))
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    node = Node("images", {
        "server": {"http": {"port": 0}, "tracing": tracing(endpoint, service_name="images")},
        "models": [{"name": "preprocess", "max_batch_size": 0,
                    "inputs": [{"name": "images", "datatype": "BYTES", "dims": [-1]}],
                    "outputs": [{"name": "pixels", "datatype": "FP32", "dims": [-1, 3, 224, 224]}],
                    "pipeline": [
                        {"stage": "fetch", "parameters": {"allow": ["127.0.0.1/32"]},
                         "inputs": {"images": "images"}, "outputs": {"images": "encoded"}},
                        {"stage": "preprocess", "parameters": {"threads": 2},
                         "inputs": {"images": "encoded"}, "outputs": {"pixels": "pixels"}}]}]})
    try:
        trace = TRACE + "90"
        urls = ["http://127.0.0.1:%d/%d.jpg" % (origin.server_address[1], i) for i in range(2)]
        body = json.dumps({"inputs": [{"name": "images", "shape": [2], "datatype": "BYTES",
                                       "data": urls}],
                           "outputs": [{"name": "pixels", "parameters": {"binary_data": True}}]})
        status, _, _ = post(node.port, "/v2/models/preprocess/infer", body,
                            {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        assert status == 200, status
        spans = wait_spans(trace, {"POST": 1, "pipeline": 1, "step": 2, "GET": 2, "item": 2})
        steps = {s["attributes"]["actorserve.stage"]: s for s in spans if s["name"].startswith("step")}
        downloads = [s for s in spans if s["name"] == "GET"]
        items = [s for s in spans if s["name"] == "item preprocess/1/preprocess"]
        assert all(d["parent_span_id"] == steps["fetch"]["span_id"] for d in downloads), downloads
        assert all(d["kind"] == "SPAN_KIND_CLIENT" and d["attributes"]["http.response.status_code"] == 200
                   for d in downloads), downloads
        assert sorted(d["attributes"]["url.full"] for d in downloads) == urls
        assert sorted(seen) == sorted("00-%s-%s-01" % (trace, d["span_id"]) for d in downloads), seen
        assert all(i["parent_span_id"] == steps["preprocess"]["span_id"] for i in items), items
        assert sorted(i["attributes"]["actorserve.item"] for i in items) == [0, 1]
    finally:
        node.stop()
        origin.shutdown()


def check_queue(endpoint):
    """A request from a Redis stream: its consumer span continues the entry's traceparent, and
    the answer entry carries this node's span."""
    import redis
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    node = None
    try:
        r = redis.Redis(port=port)
        eventually(lambda: _pings(r), 10, "redis-server")
        node = Node("queue", {
            "server": {"http": {"port": 0},
                       "queues": [{"stream": "jobs", "model": "scale",
                                   "redis": {"host": "127.0.0.1", "port": port}}],
                       "tracing": tracing(endpoint, service_name="queue")},
            "models": [scale_model()]})
        trace = TRACE + "a0"
        r.xadd("jobs", {"body": infer_body(),
                        "traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        answers = eventually(lambda: r.xrange("jobs:replies"), 20, "the answer entry")
        fields = {k.decode(): v.decode(errors="replace") for k, v in answers[0][1].items()}
        assert fields["status"] == "200", fields
        spans = wait_spans(trace, {"process": 1, "compute": 1})
        consumer = one(spans, "process")
        assert consumer["name"] == "process jobs" and consumer["kind"] == "SPAN_KIND_CONSUMER"
        assert consumer["parent_span_id"] == CALLER_SPAN
        assert fields["traceparent"] == "00-%s-%s-01" % (trace, consumer["span_id"]), fields
        a = consumer["attributes"]
        assert a["messaging.destination.name"] == "jobs" and a["messaging.system"] == "redis", a
        assert one(spans, "queue")["parent_span_id"] == consumer["span_id"]
    finally:
        if node:
            node.stop()
        server.terminate()
        server.wait()


def _pings(r):
    try:
        return r.ping()
    except Exception:
        return False


def check_grpc(node, grpc_port):
    import grpc
    import tritonclient.grpc.service_pb2 as pb
    import tritonclient.grpc.service_pb2_grpc as pb_grpc
    import numpy as np
    trace = TRACE + "30"
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel("127.0.0.1:%d" % grpc_port))
    req = pb.ModelInferRequest(model_name="scale")
    t = req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.array([1, 2, 3, 4], dtype=np.float32).tobytes())
    del t
    _, call = stub.ModelInfer.with_call(
        req, metadata=(("traceparent", "00-%s-%s-01" % (trace, CALLER_SPAN)),
                       ("tracestate", "rojo=00f067aa0ba902b7")), timeout=30)
    md = dict(call.initial_metadata())
    answered = md["traceparent"].split("-")
    assert answered[1] == trace, md
    assert md.get("tracestate") == "rojo=00f067aa0ba902b7", md
    spans = wait_spans(trace, {"inference.GRPCInferenceService/ModelInfer": 1, "compute": 1})
    server = one(spans, "inference.GRPCInferenceService/ModelInfer")
    assert server["span_id"] == answered[2] and server["parent_span_id"] == CALLER_SPAN
    a = server["attributes"]
    assert a["rpc.system"] == "grpc" and a["rpc.method"] == "ModelInfer" and a["rpc.grpc.status_code"] == 0, a


def check_sampling(endpoint):
    node = Node("sampling", {
        "server": {"http": {"port": 0},
                   "tracing": tracing(endpoint, sample_ratio=0.0, service_name="sampled")},
        "models": [scale_model()]})
    try:
        # A new trace at ratio 0: not recorded, and its answer says so (flags 00).
        status, headers, _ = post(node.port, "/v2/models/scale/infer", infer_body())
        assert status == 200 and headers["traceparent"].endswith("-00"), headers
        quiet = headers["traceparent"].split("-")[1]
        # The caller sampled it: parent-based, it is recorded whatever the ratio.
        kept = TRACE + "40"
        status, headers, _ = post(node.port, "/v2/models/scale/infer", infer_body(),
                                  {"traceparent": "00-%s-%s-01" % (kept, CALLER_SPAN)})
        assert status == 200 and headers["traceparent"].endswith("-01"), headers
        wait_spans(kept, {"POST": 1, "compute": 1})
        # The caller did not sample it, but it failed: its server span is kept (sample_errors).
        failed = TRACE + "41"
        status, headers, _ = post(node.port, "/v2/models/scale/infer",
                                  infer_body("[1,2,3]"),
                                  {"traceparent": "00-%s-%s-00" % (failed, CALLER_SPAN)})
        assert status == 400, status
        spans = wait_spans(failed, {"POST": 1})
        server = one(spans, "POST")
        assert server["attributes"]["actorserve.sampled_by"] == "error", server
        assert server["attributes"]["http.response.status_code"] == 400
        assert server["attributes"]["error.type"] == "400"
        assert server["status"] == "STATUS_CODE_UNSET"  # (a client's error, per HTTP's conventions)
        time.sleep(0.3)
        assert spans_of(quiet) == [], spans_of(quiet)
        assert [s["name"] for s in spans_of(failed)] == ["POST /v2/models/{model_name}/infer"]
    finally:
        node.stop()


def check_grpc_export(grpc_collector):
    node = Node("grpc-export", {
        "server": {"http": {"port": 0},
                   "tracing": tracing("http://127.0.0.1:%d" % grpc_collector, protocol="grpc",
                                      service_name="over-grpc")},
        "models": [scale_model()]})
    try:
        trace = TRACE + "50"
        status, _, _ = post(node.port, "/v2/models/scale/infer", infer_body(),
                            {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        assert status == 200
        spans = wait_spans(trace, {"POST": 1, "compute": 1})
        assert {s["service"] for s in spans} == {"over-grpc"}
    finally:
        node.stop()


def check_two_nodes(endpoint):
    cluster_port = free_port()
    front = Node("front", {
        "server": {"http": {"port": 0},
                   "cluster": {"role": "front", "node_name": "front",
                               "listen": {"port": cluster_port}},
                   "tracing": tracing(endpoint, service_name="front")},
        "models": [scale_model()]}, ready=False)
    worker = None
    try:
        worker = start_worker_node(endpoint, cluster_port)
        eventually(lambda: "worker scale/w1/cpu/0 is ready" in front.text(), 30, "the worker node")
        trace = TRACE + "60"
        status, _, body = post(front.port, "/v2/models/scale/infer", infer_body(),
                               {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        assert status == 200, body
        spans = wait_spans(trace, {"POST": 1, "batch": 1, "compute": 1})
        batch, compute = one(spans, "batch"), one(spans, "compute")
        assert batch["service"] == "front" and batch["attributes"]["actorserve.worker.remote"] is True
        assert compute["service"] == "worker-node", compute  # exported by the worker node itself
        assert compute["resource"]["process.pid"] == worker.proc.pid
        assert compute["parent_span_id"] == batch["span_id"]
        assert compute["attributes"]["actorserve.worker"] == "scale/w1/cpu/0"
    finally:
        if worker:
            worker.stop()
        front.stop()


def start_worker_node(endpoint, cluster_port):
    return Node("worker", {
        "server": {"cluster": {"role": "worker", "node_name": "w1",
                               "seeds": ["127.0.0.1:%d" % cluster_port], "heartbeat_ms": 100,
                               "timeout_ms": 1000, "reconnect_initial_ms": 100,
                               "reconnect_max_ms": 500},
                   "tracing": tracing(endpoint, service_name="worker-node")},
        "models": [scale_model()]}, wait_for=None)


def check_isolated(endpoint):
    """A worker in a process of its own exports its compute span itself, in the request's trace."""
    node = Node("isolated", {
        "server": {"http": {"port": 0}, "tracing": tracing(endpoint, service_name="isolated")},
        "models": [scale_model(isolation="process")]})
    try:
        trace = TRACE + "b0"
        status, _, _ = post(node.port, "/v2/models/scale/infer", infer_body(),
                            {"traceparent": "00-%s-%s-01" % (trace, CALLER_SPAN)})
        assert status == 200
        spans = wait_spans(trace, {"POST": 1, "batch": 1, "compute": 1})
        batch, compute = one(spans, "batch"), one(spans, "compute")
        assert compute["parent_span_id"] == batch["span_id"]
        assert batch["resource"]["process.pid"] == node.proc.pid
        assert compute["resource"]["process.pid"] != node.proc.pid, compute["resource"]
    finally:
        node.stop()


def check_dead_collector():
    dead = free_port()  # nothing listens there
    node = Node("dead", {
        "server": {"http": {"port": 0},
                   "tracing": tracing("http://127.0.0.1:%d/v1/traces" % dead,
                                      max_queue_spans=64, export_timeout_ms=200)},
        "models": [scale_model()]})
    try:
        for i in range(200):  # more spans than the queue holds: the full queue drops too
            status, _, _ = post(node.port, "/v2/models/scale/infer", infer_body())
            assert status == 200, (i, status)
        def counted():
            text = get(node.port, "/metrics")
            failed = series(text, 'actorserve_trace_spans_total{outcome="dropped_export_failed"}')
            return text if failed and failed > 0 else None
        text = eventually(counted, 20, "export failures counted")
        assert series(text, 'actorserve_trace_spans_total{outcome="exported"}') == 0
        assert series(text, "actorserve_trace_export_failures_total") >= 1
        assert series(text, 'actorserve_requests_total{model="scale",outcome="success"}') == 200
        assert "spans not exported to" in node.text()
    finally:
        node.stop()


def run(cases):
    """Runs each (label, check, args...) in turn, saying so as each passes."""
    for label, check, *args in cases:
        check(*args)
        print("tracing: %s: ok" % label, flush=True)


def main():
    collector = ThreadingHTTPServer(("127.0.0.1", 0), otlp_receiver.Handler)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d/v1/traces" % collector.server_address[1]
    grpc_collector, grpc_collector_port = otlp_receiver.serve_grpc()
    grpc_port = free_port()
    node = Node("tracing-node", {
        "server": {"http": {"port": 0}, "grpc": {"port": grpc_port}, "fault_injection": True,
                   "tracing": tracing(endpoint, service_name="tracing-node")},
        "models": [scale_model(instances=2, batching={"max_queue_delay_us": 20000},
                               restart={"backoff_initial_ms": 50, "backoff_max_ms": 200}),
                   {"name": "chain", "max_batch_size": 8,
                    "inputs": [{"name": "in", "datatype": "FP32", "dims": [4]}],
                    "outputs": [{"name": "out", "datatype": "FP32", "dims": [4]}],
                    "pipeline": [
                        {"model": "scale", "inputs": {"x": "in"}, "outputs": {"y": "mid"}},
                        {"model": "scale", "inputs": {"x": "mid"}, "outputs": {"y": "out"}}]}]})
    try:
        eventually(lambda: "scale/cpu/1 is ready" in node.text() and "scale/cpu/0 is ready"
                   in node.text(), 30, "both workers")
        run([("a request's span tree", check_tree, node),
             ("a batch linked to its requests", check_batch_links, node),
             ("a pipeline's steps", check_pipeline, node),
             ("gRPC traceparent and span", check_grpc, node, grpc_port),
             ("a retried request's two attempts", check_retry, node),
             ("a split batch's attempts", check_split, node)])
    except Exception:
        print(node.text(), file=sys.stderr)
        raise
    finally:
        node.stop()
    run([("sampling", check_sampling, endpoint)]
        + ([("a Redis stream's entry", check_queue, endpoint)] if QUEUES else [])
        + ([("the image stages' downloads and items", check_images, endpoint)] if IMAGES else [])
        + [("OTLP over gRPC", check_grpc_export, grpc_collector_port),
           ("a two-node request under one trace", check_two_nodes, endpoint),
           ("an isolated worker's compute span", check_isolated, endpoint),
           ("a dead collector", check_dead_collector)])
    with otlp_receiver.LOCK:
        assert otlp_receiver.STATE["bad"] == 0
    grpc_collector.stop(0)
    print("tracing: ok")


if __name__ == "__main__":
    main()
