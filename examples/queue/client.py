#!/usr/bin/env python3
"""Sends one inference request to a node through a Redis stream and prints its answer: what an
application that talks to actorserve through a queue does. The node must read the stream
(server.queues[] in its deployment; examples/queue/bench.sh starts one).

usage: client.py [--port 6379] [--stream jobs] [--model mlp]
"""
import argparse
import json
import uuid

import redis


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--stream", default="jobs")
    p.add_argument("--model", default="mlp")
    args = p.parse_args()
    r = redis.Redis(port=args.port)
    # A stream of our own (only our answers arrive there), under the queue's reply stream: a node
    # takes reply_to streams that start with its reply_to_prefixes (by default, that stream).
    reply_to = f"{args.stream}:replies:{uuid.uuid4()}"
    body = {"id": "example", "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                         "data": [0.01 * i for i in range(64)]}]}
    entry = r.xadd(args.stream, {"model": args.model, "body": json.dumps(body),
                                 "reply_to": reply_to})
    # Answers carry the request entry's ID in "request"; at least once, so a duplicate may come.
    got = r.xread({reply_to: "0-0"}, count=1, block=30000)
    r.delete(reply_to)
    if not got:
        raise SystemExit("no answer within 30 s: is a node reading stream " + args.stream + "?")
    _, fields = got[0][1][0]
    assert fields[b"request"] == entry
    status = int(fields[b"status"])
    answer = json.loads(fields[b"body"])
    if status != 200:
        raise SystemExit(f"status {status}: {answer['error']}")
    print(json.dumps(answer["outputs"][0]["data"]))


if __name__ == "__main__":
    main()
