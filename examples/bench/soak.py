#!/usr/bin/env python3
"""Soak run: a node serving two example models (one with its workers in the node, one with each
worker in a process of its own) through rounds of an idle period, a burst of load, and injected
crashes (a worker's actor crashed through fault injection, an isolated worker process killed with
SIGKILL). Every sample prints the node's resident memory, open file descriptors and threads (and
its worker processes' memory); at the end it prints the growth of the node's memory since the
first round's burst (the warm-up), the requests sent and how they were answered.

Lost requests (sent, never answered: a connection that broke or timed out) make it exit 1, and
so does a node that stopped. Memory growth is printed, not judged (it is a benchmark figure;
the hardening target is < 2% over 30 minutes after warm-up).

usage: soak.py [--binary build/app/actorserve] [--minutes 30] [--idle 60] [--burst 30]
               [--clients 8]   (the short form in CI: --minutes 2 --idle 10 --burst 10)
"""
import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def deployment():
    model = {"backend": "scale", "max_batch_size": 8,
             "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
             "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}],
             "instances": 2, "batching": {"max_queue_delay_us": 500},
             "restart": {"backoff_initial_ms": 50, "backoff_max_ms": 500, "max_restarts": 1000},
             "retry": {"max_retries": 3},
             "parameters": {"factor": 2.0, "bias": 1.0}}
    return {"server": {"http": {"port": 0}, "fault_injection": True, "log_level": "warn"},
            "models": [dict(model, name="inline"),
                       dict(model, name="isolated", isolation="process")]}


def proc_status(pid):
    """Resident memory (kB) and threads of a process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def children(pid):
    """The process's children (any of its threads may have started them)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


class load:
    """Clients on keep-alive connections, each sending one request after another while on."""

    def __init__(self, port, clients):
        self.port, self.on, self.stop = port, threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.answers = {}   # status -> count
        self.lost = []      # what became of requests that got no answer
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def client(self, i):
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                       "data": [1, 2, 3, 4]}]})
        conn = None
        while not self.stop.is_set():
            if not self.on.wait(0.2):
                continue
            model = "inline" if i % 2 == 0 else "isolated"
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.lock:
                self.sent += 1
            try:
                conn.request("POST", f"/v2/models/{model}/infer", body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.answers[r.status] = self.answers.get(r.status, 0) + 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # no answer: lost
                with self.lock:
                    self.lost.append(f"{model}: {type(e).__name__}: {e}")
                conn.close()
                conn = None

    def close(self):
        self.stop.set()
        self.on.clear()
        for t in self.threads:
            t.join(timeout=40)


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status


def ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/v2/health/ready")
        return c.getresponse().status == 200
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "net", "actorserve"))
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--idle", type=float, default=60, help="seconds of each idle period")
    p.add_argument("--burst", type=float, default=30, help="seconds of each burst of load")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--sample", type=float, default=5, help="seconds between samples")
    args = p.parse_args()

    cfg = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(deployment(), cfg)
    cfg.close()
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    node = subprocess.Popen([args.binary, "serve", "--config", cfg.name, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    port = 0
    try:
        line = node.stdout.readline()  # "actorserve: listening on http://127.0.0.1:PORT (...)"
        port = int(line.split("listening on http://")[1].split()[0].rsplit(":", 1)[1])
        deadline = time.time() + 30
        while not ready(port):
            if time.time() > deadline:
                raise SystemExit("soak: the node did not become ready")
            time.sleep(0.1)
        clients = load(port, args.clients)
        print("   t(s)  phase   node RSS (MB)  fds  threads  workers RSS (MB)  sent  answered")
        start = time.time()
        end = start + args.minutes * 60
        samples = []  # (t, rss kB) once warmed up
        phase, phase_end, rounds, crashed = "idle", start + args.idle, 0, []
        next_sample = start
        while time.time() < end:
            now = time.time()
            if node.poll() is not None:
                raise SystemExit(f"soak: the node stopped (status {node.returncode})")
            if now >= phase_end:
                if phase == "idle":
                    phase, phase_end = "burst", now + args.burst
                    clients.on.set()
                    # A crash in the middle of the burst: a worker actor, and a worker process.
                    threading.Timer(args.burst / 2, lambda: crashed.append(crash(port, node.pid))).start()
                else:
                    phase, phase_end = "idle", now + args.idle
                    clients.on.clear()
                    rounds += 1
            if now >= next_sample:
                rss, threads = proc_status(node.pid)
                fds = len(os.listdir(f"/proc/{node.pid}/fd"))
                workers = sum(proc_status(c)[0] for c in children(node.pid))
                with clients.lock:
                    sent, answered = clients.sent, sum(clients.answers.values())
                print(f"{now - start:7.0f}  {phase:6} {rss / 1024:14.1f} {fds:4d} {threads:8d} "
                      f"{workers / 1024:17.1f} {sent:5d} {answered:9d}", flush=True)
                if rounds >= 1:  # warmed up: the first burst is over
                    samples.append((now - start, rss))
                next_sample = now + args.sample
            time.sleep(0.05)
        clients.close()
        lost = list(clients.lost)
        unanswered = clients.sent - sum(clients.answers.values()) - len(lost)
        print(f"\nsoak: {args.minutes:g} min, {rounds} rounds of {args.idle:g} s idle and "
              f"{args.burst:g} s of load ({args.clients} clients), {sum(crashed)} crashes injected "
              f"(worker actors crashed, worker processes killed)")
        print(f"requests: {clients.sent} sent, answered by status {dict(sorted(clients.answers.items()))}, "
              f"lost {len(lost) + max(unanswered, 0)}")
        for what in lost[:10]:
            print("  lost:", what)
        if len(samples) >= 2:
            (t0, r0), (t1, r1) = samples[0], samples[-1]
            print(f"node RSS after warm-up: {r0 / 1024:.1f} MB at {t0:.0f} s -> {r1 / 1024:.1f} MB "
                  f"at {t1:.0f} s ({100.0 * (r1 - r0) / r0:+.2f}%)")
        if node.poll() is not None:
            raise SystemExit(f"soak: the node stopped (status {node.returncode})")
        ok = not lost and unanswered <= 0
        print("soak: ok" if ok else "soak: requests were lost")
        return 0 if ok else 1
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        os.unlink(cfg.name)
        print(f"(node log: {log.name})")


def crash(port, node_pid):
    """A worker actor of "inline" crashes on its next batch; a process of "isolated" is killed.
    Returns how many of the two were done."""
    done = 0
    try:
        done += post(port, "/v2/admin/faults", {"model": "inline", "fault": "crash"}) == 200
    except OSError:
        pass
    procs = children(node_pid)
    if procs:
        try:
            os.kill(random.choice(procs), signal.SIGKILL)
            done += 1
        except ProcessLookupError:
            pass
    return done


if __name__ == "__main__":
    sys.exit(main())
