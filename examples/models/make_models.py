#!/usr/bin/env python3
"""Makes the TorchScript models the quickstart, tests and benchmarks use. Nothing is downloaded:
weights are random with a fixed seed, so every run writes the same models.

  mlp.pt                a small MLP: input "input" FP32 [batch, 64] -> output "logits" FP32 [batch, 10]
  mlp_reference.json    inputs and the outputs the model gives for them, run directly in PyTorch
  convnet.pt            a small CNN: "input" FP32 [batch, 3, 24, 24] -> "logits" FP32 [batch, 10]
  convnet_reference.json  raw uint8 images [2, 32, 32, 3], the preprocessing (resize to 24x24,
                        mean/std) done in PyTorch, and the logits the model gives for them
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


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.features(x))


CONVNET_MEAN = [0.485, 0.456, 0.406]
CONVNET_STD = [0.229, 0.224, 0.225]


def make_convnet(out):
    net = ConvNet()
    for m in net.modules():  # non-trivial running statistics, so that batch norm matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    torch.jit.script(net).save(os.path.join(out, "convnet.pt"))
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8, generator=g)
    x = images.permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
    x = (x / 255.0 - torch.tensor(CONVNET_MEAN).view(1, 3, 1, 1)) / torch.tensor(CONVNET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        y = net(x)
    with open(os.path.join(out, "convnet_reference.json"), "w") as f:
        json.dump({"image": images.flatten().tolist(), "shape": [2, 32, 32, 3], "resize": [24, 24],
                   "mean": CONVNET_MEAN, "std": CONVNET_STD, "logits": y.tolist()}, f)
    print("wrote", os.path.join(out, "convnet.pt"))


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
    make_convnet(args.out)

    if not args.no_resnet:
        import torchvision
        resnet = torchvision.models.resnet18(weights=None).eval()
        with torch.no_grad():
            traced = torch.jit.trace(resnet, torch.randn(1, 3, 224, 224))
        traced.save(os.path.join(args.out, "resnet18.pt"))
        print("wrote", os.path.join(args.out, "resnet18.pt"))


if __name__ == "__main__":
    main()
