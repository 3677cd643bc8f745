"""A loopback OpenTelemetry collector for tests: takes OTLP trace exports over HTTP/protobuf
(POST /v1/traces) and, with --grpc-port, over gRPC (TraceService/Export), decodes them with the
official definitions (PyPI opentelemetry-proto), and serves what it received as JSON.

Usage: otlp_receiver.py [--grpc]
Prints "otlp receiver on HTTP_PORT [GRPC_PORT]" once it listens.
  GET  /spans   -> {"spans": [...], "exports": N, "bad": N}: every span, its ids in hex, its
                   resource's service.name and host, attributes as a JSON object, links, status.
  POST /status  -> body "CODE": answer exports with that HTTP status from now on (503: a
                   collector that refuses; 200 again: it recovers).
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

LOCK = threading.Lock()
SPANS = []
STATE = {"exports": 0, "bad": 0, "status": 200}


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def take(request):
    """Adds the spans of an ExportTraceServiceRequest to SPANS."""
    got = []
    for rs in request.resource_spans:
        resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                got.append({
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "attributes": {kv.key: value_of(kv.value) for kv in s.attributes},
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                              for l in s.links],
                    "status": trace_pb2.Status.StatusCode.Name(s.status.code),
                    "status_message": s.status.message,
                    "service": resource.get("service.name"),
                    "resource": resource,
                    "scope": ss.scope.name,
                })
    with LOCK:
        SPANS.extend(got)
        STATE["exports"] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/spans":
            return self.reply(404)
        with LOCK:
            body = json.dumps({"spans": SPANS, "exports": STATE["exports"], "bad": STATE["bad"]})
        self.reply(200, body.encode())

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/status":
            STATE["status"] = int(data)
            return self.reply(200)
        if self.path != "/v1/traces":
            return self.reply(404)
        if STATE["status"] != 200:
            return self.reply(STATE["status"])
        if self.headers.get("Content-Type") != "application/x-protobuf":
            STATE["bad"] += 1
            return self.reply(415)
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(data)
        except Exception:
            STATE["bad"] += 1
            return self.reply(400)
        take(request)
        self.reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                   "application/x-protobuf")


def serve_grpc():
    import grpc
    from concurrent import futures

    def export(request, context):
        take(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(
            export,
            request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", action="store_true", help="also take OTLP over gRPC")
    args = ap.parse_args()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ports = [str(http.server_address[1])]
    if args.grpc:
        grpc_server, grpc_port = serve_grpc()
        ports.append(str(grpc_port))
    print("otlp receiver on " + " ".join(ports), flush=True)
    http.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
