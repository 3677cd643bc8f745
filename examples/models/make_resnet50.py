#!/usr/bin/env python3
"""Makes the GPU benchmark's model on the machine that runs it: torchvision ResNet-50 (random
weights, fixed seed), fp16, channels-last, traced on the GPU and frozen (conv-bn folded), as
TorchScript: "input" FP16 [batch, 3, 224, 224] -> "logits" [batch, 1000]. A frozen CUDA model only
loads where a GPU is, so it is made there, not shipped.

usage: make_resnet50.py [--out DIR] [--device cuda:0]
"""
import argparse
import os

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--device", default="cuda:0")
    args = ap.parse_args()
    torch.manual_seed(1234)
    dev = torch.device(args.device)
    net = torchvision.models.resnet50(weights=None).eval().to(dev).half()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 224, 224, device=dev).half().contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        traced = torch.jit.freeze(torch.jit.trace(net, x))
    path = os.path.join(args.out, "resnet50_fp16.pt")
    traced.save(path)
    print("wrote", path)


if __name__ == "__main__":
    main()
