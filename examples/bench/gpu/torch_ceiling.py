#!/usr/bin/env python3
"""The direct-call ceiling: the TorchScript model called from Python on a GPU-resident fp16
channels-last batch, no server, no copies. Median time of 30 batches after 10 warm-up calls, as
images/s, one line of JSON.

usage: torch_ceiling.py MODEL_PATH BATCH [DEVICE]
"""
import json
import statistics
import sys
import time

import torch


def main():
    path, batch = sys.argv[1], int(sys.argv[2])
    dev = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cuda:0")
    torch.backends.cudnn.benchmark = True
    model = torch.jit.load(path, map_location=dev).eval()
    x = torch.randn(batch, 3, 224, 224, device=dev).half().contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for i in range(40):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            torch.cuda.synchronize()
            if i >= 10:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"batch": batch, "ms_per_batch": med * 1e3, "images_per_s": batch / med,
                      "device": torch.cuda.get_device_name(dev)}))


if __name__ == "__main__":
    main()
