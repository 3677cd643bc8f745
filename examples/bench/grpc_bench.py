#!/usr/bin/env python3
"""Closed-loop gRPC load on a running node's KServe v2 gRPC front (server.grpc): CONCURRENCY
calls in flight from one asyncio client (grpc.aio with the protocol's stubs from tritonclient),
each 1x64 FP32 row for the quickstart's MLP sent as raw_input_contents. Prints answers/s and
latency percentiles. The client shares the machine with the node: on a small machine it is the
limit, so compare with a client of the same kind (examples/bench/http_quick.sh uses wrk).

usage: grpc_bench.py HOST:PORT [--model mlp] [--concurrency 64] [--seconds 10] [--stream]
                     [--label NAME --json FILE]   (appends a record in actorserve-loadgen's format)
"""
import argparse
import asyncio
import json
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def run(args):
    async with grpc.aio.insecure_channel(args.url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name=args.model)
        req.inputs.add(name="input", datatype="FP32", shape=[1, 64])
        req.raw_input_contents.append((np.arange(64, dtype=np.float32) * 0.01).tobytes())
        await stub.ModelInfer(req)  # (warm: the channel is connected)
        latencies, errors = [], 0
        stop = time.monotonic() + args.seconds
        if args.stream:
            return await stream(args, stub, req, stop)

        async def client():
            nonlocal errors
            while time.monotonic() < stop:
                t0 = time.monotonic()
                try:
                    await stub.ModelInfer(req, timeout=30)
                    latencies.append(time.monotonic() - t0)
                except grpc.aio.AioRpcError:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - t0
    ms = [x * 1000 for x in latencies]
    print(f"RESULT grpc concurrency={args.concurrency} answers_per_s={len(ms) / elapsed:.0f} "
          f"p50_ms={pct(ms, 50):.2f} p90_ms={pct(ms, 90):.2f} p99_ms={pct(ms, 99):.2f} "
          f"errors={errors}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"label": args.label, "mode": "closed", "load": args.concurrency,
                                "requests_per_s": len(ms) / elapsed,
                                "p50_us": pct(ms, 50) * 1000, "p90_us": pct(ms, 90) * 1000,
                                "p99_us": pct(ms, 99) * 1000,
                                "errors": {"grpc": errors} if errors else {}}) + "\n")


async def stream(args, stub, req, stop):
    """One ModelStreamInfer call with CONCURRENCY requests in flight on it."""
    call = stub.ModelStreamInfer()
    window = asyncio.Semaphore(args.concurrency)
    sent, latencies, errors = {}, [], 0
    t0 = time.monotonic()

    async def writer():
        i = 0
        while time.monotonic() < stop:
            await window.acquire()
            req.id = str(i)
            sent[req.id] = time.monotonic()
            i += 1
            await call.write(req)
        await call.done_writing()

    async def reader():
        nonlocal errors
        async for answer in call:
            if answer.error_message:
                errors += 1
            latencies.append(time.monotonic() - sent.pop(answer.infer_response.id))
            window.release()

    await asyncio.gather(writer(), reader())
    elapsed = time.monotonic() - t0
    ms = [x * 1000 for x in latencies]
    print(f"RESULT grpc-stream in_flight={args.concurrency} answers_per_s={len(ms) / elapsed:.0f} "
          f"p50_ms={pct(ms, 50):.2f} p90_ms={pct(ms, 90):.2f} p99_ms={pct(ms, 99):.2f} "
          f"errors={errors}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("url")
    p.add_argument("--model", default="mlp")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--stream", action="store_true",
                   help="one ModelStreamInfer call with CONCURRENCY requests in flight on it")
    p.add_argument("--label", default="grpc")
    p.add_argument("--json", help="append the unary result to this JSONL file")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
