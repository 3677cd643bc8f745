#!/usr/bin/env python3
"""Measures a node's event-queue ingress (server.queues[]) from a Redis client.

closed: CONCURRENCY clients, each adding an entry and waiting for its answer on its own reply
        stream before the next: answers/s and latency percentiles (add -> answer seen).
fill:   adds COUNT entries (pipelined), answers to STREAM:bench:backlog; run it before the node
        starts, then
drain:  waits for those COUNT answers: the node's entries/s working through a backlog, from its
        first answer to its last (the answer entries' IDs: Redis's clock), whatever the client's
        speed.

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
        reply = f"{args.stream}:replies:bench:{i}"
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


async def fill(args, body):
    r = aioredis.Redis(port=args.port)
    reply = f"{args.stream}:replies:bench:backlog"
    await r.delete(reply)
    for start in range(0, args.count, 1000):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(1000, args.count - start)):
            pipe.xadd(args.stream, {"model": args.model, "body": body, "reply_to": reply})
        await pipe.execute()
    await r.aclose()
    print(f"filled {args.stream} with {args.count} entries (answers to {reply})")


async def drain(args, body):
    r = aioredis.Redis(port=args.port)
    reply = f"{args.stream}:replies:bench:backlog"
    last, stamps, statuses = "0-0", [], {}
    while len(stamps) < args.count:
        got = await r.xread({reply: last}, count=1000, block=60000)
        if not got:
            raise SystemExit(f"only {len(stamps)} of {args.count} answers within 60 s")
        for entry_id, fields in got[0][1]:
            last = entry_id
            stamps.append(int(entry_id.split(b"-")[0]))
            s = fields[b"status"].decode()
            statuses[s] = statuses.get(s, 0) + 1
    await r.delete(reply)
    await r.aclose()
    span_ms = max(stamps[-1] - stamps[0], 1)
    print(f"RESULT mode=backlog entries={args.count} first_to_last_answer_ms={span_ms} "
          f"entries_per_s={1000 * (len(stamps) - 1) / span_ms:.0f} statuses={statuses}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--stream", default="jobs")
    p.add_argument("--model", default="mlp")
    p.add_argument("--mode", choices=["closed", "fill", "drain"], default="closed")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--count", type=int, default=20000)
    args = p.parse_args()
    body = body_for(args.model)
    asyncio.run({"closed": closed, "fill": fill, "drain": drain}[args.mode](args, body))


if __name__ == "__main__":
    main()
