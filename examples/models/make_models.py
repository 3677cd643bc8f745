#!/usr/bin/env python3
"""Makes the TorchScript models the quickstart, tests and benchmarks use. Nothing is downloaded:
weights are random with a fixed seed, so every run writes the same models.

  mlp.pt                a small MLP: input "input" FP32 [batch, 64] -> output "logits" FP32 [batch, 10]
  mlp_reference.json    inputs and the outputs the model gives for them, run directly in PyTorch
  resnet18.pt           torchvision ResNet-18, random weights: "input" FP32 [batch, 3, 224, 224]
                        -> "logits" FP32 [batch, 1000] (skipped with --no-resnet)

usage: make_models.py [--out DIR] [--no-resnet]
"""
import argparse
import json
import os

import torch


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--no-resnet", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(1234)

    mlp = MLP().eval()
    scripted = torch.jit.script(mlp)
    scripted.save(os.path.join(args.out, "mlp.pt"))
    x = torch.randn(8, 64)
    with torch.no_grad():
        y = mlp(x)
    with open(os.path.join(args.out, "mlp_reference.json"), "w") as f:
        json.dump({"input": x.tolist(), "logits": y.tolist()}, f)
    print("wrote", os.path.join(args.out, "mlp.pt"))

    if not args.no_resnet:
        import torchvision
        resnet = torchvision.models.resnet18(weights=None).eval()
        with torch.no_grad():
            traced = torch.jit.trace(resnet, torch.randn(1, 3, 224, 224))
        traced.save(os.path.join(args.out, "resnet18.pt"))
        print("wrote", os.path.join(args.out, "resnet18.pt"))


if __name__ == "__main__":
    main()
