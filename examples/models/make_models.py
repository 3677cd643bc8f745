#!/usr/bin/env python3
"""Makes the TorchScript models the quickstart, tests and benchmarks use. Nothing is downloaded:
weights are random with a fixed seed, so every run writes the same models.

  mlp.pt                a small MLP: input "input" FP32 [batch, 64] -> output "logits" FP32 [batch, 10]
  mlp_reference.json    inputs and the outputs the model gives for them, run directly in PyTorch
  convnet.pt            a small CNN: "input" FP32 [batch, 3, 24, 24] -> "logits" FP32 [batch, 10]
  convnet_reference.json  raw uint8 images [2, 32, 32, 3], the preprocessing (resize to 24x24,
                        mean/std) done in PyTorch, its result ("input") and the logits the model
                        gives for them
  resnet18.pt           torchvision ResNet-18, random weights: "input" FP32 [batch, 3, 224, 224]
                        -> "logits" FP32 [batch, 1000] (skipped with --no-resnet)

With --aoti, the same models as torch.export + AOTInductor packages for the "aoti" backend (each
compiles C++ for this machine's CPU: about 40 s apiece on 2 cores), their batch range and input
dims recorded in the package's metadata (actorserve.batch_min, actorserve.batch_max,
actorserve.inputs: the dims past the batch dimension, inputs separated by ";"):

  mlp.pt2               the MLP, batch 1..64 (dynamic)
  mlp_b8.pt2            the MLP compiled for batch 8 only (smaller batches are padded to it)
  convnet.pt2           the CNN, batch 1..16
  resnet18.pt2          ResNet-18, batch 1..16 (not with --no-resnet)

usage: make_models.py [--out DIR] [--no-resnet] [--aoti]
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
                   "mean": CONVNET_MEAN, "std": CONVNET_STD, "input": x.tolist(),
                   "logits": y.tolist()}, f)
    print("wrote", os.path.join(out, "convnet.pt"))
    return net


def make_aoti(model, example, path, batch_min, batch_max):
    """Exports `model` with a batch dimension from batch_min to batch_max (one size: static) and
    compiles it into an AOTInductor package at `path`."""
    if batch_min == batch_max:
        example = example[:1].expand(batch_min, *example.shape[1:]).contiguous()
        dynamic = None
    else:
        dynamic = ({0: torch.export.Dim("batch", min=batch_min, max=batch_max)},)
    with torch.no_grad():
        ep = torch.export.export(model, (example,), dynamic_shapes=dynamic)
        torch._inductor.aoti_compile_and_package(
            ep, package_path=path,
            inductor_configs={"aot_inductor.metadata": {
                "actorserve.batch_min": str(batch_min), "actorserve.batch_max": str(batch_max),
                "actorserve.inputs": ",".join(str(d) for d in example.shape[1:])}})
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--no-resnet", action="store_true")
    ap.add_argument("--aoti", action="store_true", help="also AOTInductor packages (.pt2)")
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
    convnet = make_convnet(args.out)
    if args.aoti:
        make_aoti(mlp, x, os.path.join(args.out, "mlp.pt2"), 1, 64)
        make_aoti(mlp, x, os.path.join(args.out, "mlp_b8.pt2"), 8, 8)
        make_aoti(convnet, torch.randn(2, 3, 24, 24), os.path.join(args.out, "convnet.pt2"), 1, 16)

    if not args.no_resnet:
        import torchvision
        resnet = torchvision.models.resnet18(weights=None).eval()
        with torch.no_grad():
            traced = torch.jit.trace(resnet, torch.randn(1, 3, 224, 224))
        traced.save(os.path.join(args.out, "resnet18.pt"))
        print("wrote", os.path.join(args.out, "resnet18.pt"))
        if args.aoti:
            make_aoti(resnet, torch.randn(2, 3, 224, 224), os.path.join(args.out, "resnet18.pt2"),
                      1, 16)


if __name__ == "__main__":
    main()
