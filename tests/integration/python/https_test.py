#!/usr/bin/env python3
"""The HTTP front over TLS (server.http.tls): NVIDIA Triton's Python HTTP client, and Python's own
ssl, against actorserve. Without a client CA (MODE plain-clients): a client that trusts the CA is
served; a plaintext request gets 400 naming HTTPS; TLS 1.1 is refused. With one (MODE
client-certificates): a client with a certificate the CA signed is served; one without a
certificate and one whose certificate another CA signed are refused. Exits non-zero on any
mismatch.

usage: https_test.py HOST:PORT DIR MODE (DIR holds ca.pem, client.pem/.key, rogue.pem/.key)
       https_test.py HOST:PORT DIR served-by CA: exits 0 if a client trusting only DIR/CA.pem
       is served (for certificate rotation), else prints why and exits 1
"""
import http.client
import json
import ssl
import sys

import numpy as np
import tritonclient.http as httpclient

BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                               "data": [1, 2, 3, 4]}]})


def context(d, cert=None):
    ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
    if cert:
        ctx.load_cert_chain(f"{d}/{cert}.pem", f"{d}/{cert}.key")
    return ctx


def infer(host, port, ctx):
    """The scale model's answer over HTTPS, or the exception raised on the way."""
    try:
        c = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
        c.request("POST", "/v2/models/scale/infer", BODY)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return e


def main():
    address, d, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = address.rsplit(":", 1)
    port = int(port)
    if mode == "served-by":
        ctx = ssl.create_default_context(cafile=f"{d}/{sys.argv[4]}.pem")
        got = infer(host, port, ctx)
        print("served-by", sys.argv[4], got)
        sys.exit(0 if isinstance(got, tuple) and got[0] == 200 else 1)
    served_as = "client" if mode == "client-certificates" else None
    status, answer = infer(host, port, context(d, served_as))
    assert status == 200, (status, answer)
    assert answer["outputs"][0]["data"] == [3, 5, 7, 9], answer

    # Triton's HTTP client over TLS.
    opts = {"ca_certs": f"{d}/ca.pem"}
    if served_as:
        opts.update(certfile=f"{d}/client.pem", keyfile=f"{d}/client.key")
    t = httpclient.InferenceServerClient(url=address, ssl=True, ssl_options=opts)
    assert t.is_server_ready()
    x = httpclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.array([[1, 2, 3, 4]], np.float32), binary_data=True)
    assert list(t.infer("scale", [x]).as_numpy("y")[0]) == [3, 5, 7, 9]

    if mode == "plain-clients":
        # Plaintext on the HTTPS port: 400 in plaintext, naming what to do.
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("POST", "/v2/models/scale/infer", BODY)
        r = c.getresponse()
        text = r.read().decode()
        assert r.status == 400 and "serves HTTPS only" in text, (r.status, text)
        old = context(d)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        got = infer(host, port, old)
        assert isinstance(got, Exception), f"TLS 1.1 was served: {got}"
    else:
        got = infer(host, port, context(d))
        assert isinstance(got, Exception), f"a client without a certificate was served: {got}"
        got = infer(host, port, context(d, "rogue"))
        assert isinstance(got, Exception), f"a client another CA signed was served: {got}"
    print("https", mode + ": ok")


if __name__ == "__main__":
    main()
