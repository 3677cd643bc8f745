"""The image pipeline against an origin web server under this script's control, on loopback.

Usage: image_pipeline_test.py ACTORSERVE_PORT [CONVNET_PT]

The node serves config written by tests/integration/images_test.cpp: model "preprocess" (fetch,
then preprocess), allowing 127.0.0.1/32, at most 4 connections per host, 1.5 s per attempt, no
retries, 2 MB per image, 3 redirects; "via_decode" (fetch with its defaults, then decode, then
preprocess); with CONVNET_PT also "classify" (the same stages with Resize(28) and CenterCrop(24),
then that TorchScript model). Prints "image pipeline: ok" when every check passed.
"""
import io
import json
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import PIL.Image as Image
import skimage.data
import torch
import torchvision.transforms as T

NODE = int(sys.argv[1])
CONVNET = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
PHOTOS = {name: getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea")}


def encoded(array, fmt, **kw):
    b = io.BytesIO()
    Image.fromarray(array).save(b, format=fmt, **kw)
    return b.getvalue()


FILES = {f"/{n}.jpg": encoded(a, "JPEG", quality=90) for n, a in PHOTOS.items()}
FILES["/chelsea.png"] = encoded(PHOTOS["chelsea"], "PNG")
FILES["/truncated.jpg"] = FILES["/astronaut.jpg"][: len(FILES["/astronaut.jpg"]) // 2]
FILES["/text.jpg"] = b"<html>not an image</html>"
FILES["/big.jpg"] = b"\xff\xd8\xff" + bytes(3 << 20)


def png_bomb(w, h):
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\0" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


FILES["/bomb.png"] = png_bomb(100_000, 100_000)


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    active = 0
    most = 0
    hung = 0
    hung_left = 0  # requests to /hang whose connection was closed by the node
    flaky = {}  # requests to each /flaky/ path so far (the first of each is answered 503)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer()

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer(self):
        path = self.path
        if path.startswith("/slow/"):
            # Counted from the request's arrival to just before its answer: the node can only send
            # another request once it has an answer, so a count taken after the answer is written
            # would also hold requests already done whose thread has not yet got the lock (so a
            # loaded machine saw 5 "at once" with a bound of 4).
            with Origin.lock:
                Origin.active += 1
                Origin.most = max(Origin.most, Origin.active)
            time.sleep(0.3)
            with Origin.lock:
                Origin.active -= 1
            return self.send(200, FILES["/" + path.split("/")[2]])
        if path == "/hang":  # never answers; notices when the node gives up on it
            with Origin.lock:
                Origin.hung += 1
            self.connection.settimeout(0.1)
            for _ in range(300):
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            with Origin.lock:
                Origin.hung_left += 1
            self.close_connection = True
            return
        if path.startswith("/flaky/"):
            with Origin.lock:
                Origin.flaky[path] = Origin.flaky.get(path, 0) + 1
                first = Origin.flaky[path] == 1
            if first:
                return self.send(503, b"try again")
            return self.send(200, FILES["/" + path.split("/")[2]])
        if path == "/loop":
            return self.send(302, headers=[("Location", "/loop")])
        if path == "/moved":
            return self.send(301, headers=[("Location", "/coffee.jpg")])
        if path in FILES:
            return self.send(200, FILES[path])
        return self.send(404, b"no such file")


origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
origin.daemon_threads = True
threading.Thread(target=origin.serve_forever, daemon=True).start()
BASE = f"http://127.0.0.1:{origin.server_address[1]}"


def infer(items, parameters=None, binary=False, timeout=30, model="preprocess"):
    if binary:
        payload = b"".join(struct.pack("<I", len(e)) + e for e in items)
        header = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(items)],
                              "parameters": {"binary_data_size": len(payload)}}]}
    else:
        payload = b""
        header = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(items)],
                              "data": items}]}
    header["outputs"] = [{"name": "pixels", "parameters": {"binary_data": True}}]
    if parameters:
        header["parameters"] = parameters
    head = json.dumps(header).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{NODE}/v2/models/{model}/infer",
                                 data=head + payload,
                                 headers={"Inference-Header-Content-Length": str(len(head))})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            n = int(r.headers["Inference-Header-Content-Length"])
            meta = json.loads(body[:n])
            shape = meta["outputs"][0]["shape"]
            return 200, np.frombuffer(body[n:], dtype=np.float32).reshape(shape)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]


REFERENCE = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def reference(paths):
    return torch.stack([REFERENCE(Image.open(io.BytesIO(FILES[p])).convert("RGB"))
                        for p in paths]).numpy()


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def expect_error(urls, status, *fragments):
    code, err = infer(urls)
    check(code == status and all(f in err for f in fragments),
          f"{urls}: expected {status} with {fragments}, got {code} {err}")


def metric(name, **labels):
    text = urllib.request.urlopen(f"http://127.0.0.1:{NODE}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# 1. Outputs equal torchvision's, fetched (32 URLs: JPEG and PNG) or sent as bytes.
paths = ["/astronaut.jpg", "/coffee.jpg", "/chelsea.jpg", "/chelsea.png"] * 8
code, out = infer([BASE + p for p in paths])
check(code == 200, f"fetch 32: {code} {out}")
diff = float(np.abs(out - reference(paths)).max())
check(diff == 0.0, f"outputs differ from torchvision's by up to {diff}")
code, out = infer([FILES[p] for p in paths[:4]], {"images_are": "bytes"}, binary=True)
check(code == 200 and float(np.abs(out - reference(paths[:4])).max()) == 0.0,
      f"bytes: {code}")
code, out = infer([BASE + p for p in paths[:4]], model="via_decode")  # decode, then preprocess
check(code == 200 and float(np.abs(out - reference(paths[:4])).max()) == 0.0,
      f"via the decode stage: {code}")
expect_decode = infer([BASE + "/truncated.jpg"], model="via_decode")
check(expect_decode[0] == 400 and "step 1 (stage 'decode')" in expect_decode[1]
      and "corrupt or truncated" in expect_decode[1], f"decode stage error: {expect_decode}")
code, out = infer([BASE + "/moved"])  # a redirect is followed
check(code == 200 and float(np.abs(out - reference(["/coffee.jpg"])).max()) == 0.0,
      f"redirect: {code}")

# 2. The per-host bound, as the origin sees it: 24 slow downloads, at most 4 at once. They take
# 6 x 0.3 s, longer than the 1.5 s per attempt, and succeed without retries: an attempt's time
# starts when it gets its turn, not while it waits for one.
Origin.most = 0
code, out = infer([f"{BASE}/slow/coffee.jpg"] * 24)
check(code == 200 and out.shape[0] == 24, f"slow: {code} {out}")
check(2 <= Origin.most <= 4, f"the origin saw {Origin.most} connections at once (bound 4)")

# A 503 is retried (via_decode's fetch keeps its default 2 retries): one item answered 503 first.
code, out = infer([BASE + "/flaky/astronaut.jpg", BASE + "/coffee.jpg"], model="via_decode")
check(code == 200 and Origin.flaky.get("/flaky/astronaut.jpg") == 2
      and float(np.abs(out - reference(["/astronaut.jpg", "/coffee.jpg"])).max()) == 0.0,
      f"retried after a 503: {code}, the origin saw {Origin.flaky} requests")

# 3. Each failure has its status and names the item and the reason.
expect_error([BASE + "/coffee.jpg", BASE + "/missing.jpg"], 502, "item 1", "HTTP 404")
expect_error([BASE + "/hang"], 504, "item 0", "1500 ms")
expect_error([BASE + "/big.jpg"], 413, "item 0", "larger than 2097152 bytes")
expect_error([BASE + "/text.jpg"], 400, "item 0", "not a JPEG, PNG")
expect_error([BASE + "/truncated.jpg"], 400, "item 0", "corrupt or truncated")
expect_error([BASE + "/bomb.png"], 413, "item 0", "100000x100000 pixels")
expect_error([BASE + "/loop"], 502, "item 0", "more than 3 redirects")
expect_error(["http://10.255.255.1/x.jpg"], 403, "item 0", "not allowed")
expect_error(["http://169.254.169.254/latest/meta-data/"], 403, "link-local")
expect_error(["file:///etc/passwd"], 400, "not an http:// or https:// URL")
code, err = infer([BASE + "/coffee.jpg"], {"images_are": "pictures"})
check(code == 400 and "images_are" in err, f"images_are: {code} {err}")

# 4. A client that leaves: its downloads stop (the origin's connections are closed) long before
# the request's deadline.
left_before = Origin.hung_left
cancelled_before = metric("actorserve_stage_failures_total", reason="cancelled")
body = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3],
                               "data": [BASE + "/hang"] * 3}],
                   "parameters": {"timeout": 20_000_000}}).encode()
s = socket.create_connection(("127.0.0.1", NODE))
s.sendall(b"POST /v2/models/preprocess/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
time.sleep(0.5)
s.close()
deadline = time.time() + 5
while time.time() < deadline and Origin.hung_left - left_before < 3:
    time.sleep(0.1)
check(Origin.hung_left - left_before >= 3,
      f"after the client left, {Origin.hung_left - left_before} of 3 downloads stopped")
while time.time() < deadline and metric("actorserve_stage_failures_total",
                                        reason="cancelled") - cancelled_before < 3:
    time.sleep(0.1)
check(metric("actorserve_stage_items_in_flight") == 0, "downloads still in flight")

# 5. Straight into a model: the logits PyTorch gives for torchvision's preprocessing.
if CONVNET:
    small = T.Compose([T.Resize(28), T.CenterCrop(24), T.ToTensor(),
                       T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    paths = ["/astronaut.jpg", "/coffee.jpg", "/chelsea.png"]
    x = torch.stack([small(Image.open(io.BytesIO(FILES[p])).convert("RGB")) for p in paths])
    with torch.no_grad():
        expected = torch.jit.load(CONVNET)(x).numpy()
    body = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3],
                                   "data": [BASE + p for p in paths]}]}).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{NODE}/v2/models/classify/infer", data=body), timeout=30) as r:
        got = np.array(json.loads(r.read())["outputs"][0]["data"], dtype=np.float32).reshape(3, 10)
    err = float(np.abs(got - expected).max())
    check(err < 1e-4, f"classify: logits differ from PyTorch's by {err}")

# 6. Still serving.
code, out = infer([BASE + "/astronaut.jpg"])
check(code == 200, f"after all that: {code} {out}")
print("image pipeline: ok")
