#!/usr/bin/env python3
"""Measures a node's event-queue ingress (server.queues[]) from a Redis client.

closed: CONCURRENCY clients, each adding an entry and waiting for its answer on its own reply
        stream before the next: answers/s and latency percentiles (add -> answer seen).
burst:  COUNT entries added at once (pipelined), then the answers awaited: entries/s through the
        node with a backlog, and the spread of the server-side latencies (the answer entry's ID
        time minus the request entry's, both Redis's clock, in ms).

Usage: queue_bench.py --port REDIS_PORT --stream jobs --model mlp --mode closed --concurrency 64
       --seconds 10 (needs the Python package redis: scripts/install-deps.sh installs it).
"""
import argparse
import asyncio
import json
import statistics
import time

import redis.asyncio as aioredis


def body_for(model):
    if model == "mlp":
        return json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                       "data": [round(0.01 * i, 2) for i in range(64)]}]})
    if model == "scale":
        return json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                       "data": [1, 2, 3, 4]}]})
    raise SystemExit(f"no request body for model {model}")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def closed(args, body):
    r = aioredis.Redis(port=args.port, max_connections=args.concurrency * 2 + 4)
    latencies, statuses = [], {}
    stop = time.monotonic() + args.seconds

    async def client(i):
        reply = f"{args.stream}:bench:{i}"
        await r.delete(reply)
        last = "0-0"
        while time.monotonic() < stop:
            t0 = time.monotonic()
            await r.xadd(args.stream, {"model": args.model, "body": body, "reply_to": reply})
            got = await r.xread({reply: last}, count=1, block=30000)
            if not got:
                raise SystemExit("no answer within 30 s")
            last, fields = got[0][1][0]
            latencies.append(time.monotonic() - t0)
            s = fields[b"status"].decode()
            statuses[s] = statuses.get(s, 0) + 1
        await r.delete(reply)

    t0 = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(args.concurrency)))
    elapsed = time.monotonic() - t0
    await r.aclose()
    ms = [x * 1000 for x in latencies]
    print(f"RESULT mode=closed concurrency={args.concurrency} answers={len(ms)} "
          f"answers_per_s={len(ms) / elapsed:.0f} p50_ms={pct(ms, 50):.2f} "
          f"p90_ms={pct(ms, 90):.2f} p99_ms={pct(ms, 99):.2f} statuses={statuses}")


async def burst(args, body):
    r = aioredis.Redis(port=args.port)
    reply = f"{args.stream}:bench:burst"
    await r.delete(reply)
    t0 = time.monotonic()
    sent = {}
    for start in range(0, args.count, 1000):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(1000, args.count - start)):
            pipe.xadd(args.stream, {"model": args.model, "body": body, "reply_to": reply})
        for entry_id in await pipe.execute():
            sent[entry_id] = True
    added = time.monotonic() - t0
    last, seen, server_ms, statuses = "0-0", 0, [], {}
    while seen < args.count:
        got = await r.xread({reply: last}, count=1000, block=30000)
        if not got:
            raise SystemExit(f"only {seen} of {args.count} answers within 30 s")
        for entry_id, fields in got[0][1]:
            last = entry_id
            seen += 1
            asked = int(fields[b"request"].split(b"-")[0])
            server_ms.append(int(entry_id.split(b"-")[0]) - asked)
            s = fields[b"status"].decode()
            statuses[s] = statuses.get(s, 0) + 1
    elapsed = time.monotonic() - t0
    await r.delete(reply)
    await r.aclose()
    print(f"RESULT mode=burst entries={args.count} added_in_s={added:.2f} "
          f"entries_per_s={args.count / elapsed:.0f} entry_to_answer_p50_ms={pct(server_ms, 50)} "
          f"p99_ms={pct(server_ms, 99)} max_ms={max(server_ms)} statuses={statuses}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--stream", default="jobs")
    p.add_argument("--model", default="mlp")
    p.add_argument("--mode", choices=["closed", "burst"], default="closed")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--count", type=int, default=20000)
    args = p.parse_args()
    body = body_for(args.model)
    asyncio.run(closed(args, body) if args.mode == "closed" else burst(args, body))


if __name__ == "__main__":
    main()
