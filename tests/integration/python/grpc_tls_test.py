#!/usr/bin/env python3
"""The gRPC front over TLS with client certificates (server.grpc.tls with client_ca), from Triton's
Python gRPC client: a client with a certificate the CA signed is served; one without a
certificate, one whose certificate another CA signed, and a plaintext one are refused.

usage: grpc_tls_test.py HOST:PORT DIR (DIR holds ca.pem, client.pem/.key, rogue.pem/.key)
"""
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc


def read(path):
    return open(path, "rb").read()


def refused(channel):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=5)
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAVAILABLE
    return False


def main():
    url, d = sys.argv[1], sys.argv[2]
    c = grpcclient.InferenceServerClient(url=url, ssl=True, root_certificates=f"{d}/ca.pem",
                                         private_key=f"{d}/client.key",
                                         certificate_chain=f"{d}/client.pem")
    assert c.is_server_live()
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.array([[1, 2, 3, 4]], np.float32))
    assert list(c.infer("scale", [x]).as_numpy("y")[0]) == [3, 5, 7, 9]
    ca = read(f"{d}/ca.pem")
    assert refused(grpc.secure_channel(url, grpc.ssl_channel_credentials(root_certificates=ca))), \
        "served a client without a certificate"
    rogue = grpc.ssl_channel_credentials(root_certificates=ca, private_key=read(f"{d}/rogue.key"),
                                         certificate_chain=read(f"{d}/rogue.pem"))
    assert refused(grpc.secure_channel(url, rogue)), "served a client another CA signed"
    assert refused(grpc.insecure_channel(url)), "served a plaintext client"
    print("grpc tls: ok")


if __name__ == "__main__":
    main()
