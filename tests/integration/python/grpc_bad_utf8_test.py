#!/usr/bin/env python3
"""Requests whose protobuf strings are not UTF-8, sent as raw bytes (no client library would
serialize them): each is refused with a gRPC error, the node keeps serving, and prints what it
answered. Prints "bad utf8: ok N" on success (N requests refused).

usage: grpc_bad_utf8_test.py GRPC_HOST:PORT COUNT
"""
import sys

import grpc


def field(number, payload):
    """A length-delimited protobuf field (wire type 2); payloads here are under 128 bytes."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def main():
    target, count = sys.argv[1], int(sys.argv[2])
    channel = grpc.insecure_channel(target)
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    ready = channel.unary_unary("/inference.GRPCInferenceService/ServerReady")
    bad_input = field(1, b"x\xff") + field(2, b"FP32")  # InferInputTensor: name, datatype
    messages = [field(1, b"scale\xff\xfe"),                       # model_name
                field(1, b"scale") + field(5, bad_input)]         # an input's name
    codes = set()
    for i in range(count):
        try:
            infer(messages[i % 2], timeout=5)
            raise AssertionError("a request with invalid UTF-8 was served")
        except grpc.RpcError as e:
            codes.add(e.code().name)
    # Still serving: ServerReady (an empty request) answers.
    reply = ready(b"", timeout=5)
    assert reply == b"\x08\x01", f"ServerReady answered {reply!r}"
    print(f"bad utf8: ok {count} refused with {sorted(codes)}")


if __name__ == "__main__":
    main()
