"""What the Python peers share: parse a KServe v2 infer request (JSON data or the binary tensor
extension) into a numpy array, and encode the answer in the same protocol."""
import json

import numpy as np

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8}


def decode(body: bytes, json_length):
    header = json.loads(body[:json_length] if json_length is not None else body)
    inp = header["inputs"][0]
    dtype = DTYPES[inp["datatype"]]
    shape = inp["shape"]
    if json_length is not None:
        arr = np.frombuffer(body[json_length:], dtype=dtype).reshape(shape)
    else:
        arr = np.asarray(inp["data"], dtype=dtype).reshape(shape)
    return header, arr


def wants_binary(header) -> bool:
    outs = header.get("outputs") or []
    return any((o.get("parameters") or {}).get("binary_data") for o in outs)


def encode_binary(model, output_name, out: np.ndarray):
    """The binary tensor extension's answer: (body, JSON header length)."""
    out = np.ascontiguousarray(out, dtype=np.float32)
    head = json.dumps({"model_name": model, "model_version": "1", "outputs": [{
        "name": output_name, "datatype": "FP32", "shape": list(out.shape),
        "parameters": {"binary_data_size": out.nbytes}}]}).encode()
    return head + out.tobytes(), len(head)


def encode(model, output_name, out: np.ndarray) -> bytes:
    return json.dumps({"model_name": model, "model_version": "1", "outputs": [{
        "name": output_name, "datatype": "FP32", "shape": list(out.shape),
        "data": out.reshape(-1).tolist()}]}).encode()
