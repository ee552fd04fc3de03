"""PyTorch side of benches/backbones.rs: the same workload, printed as `images/s peak-MiB`.

Usage: python benches/backbones.py --case resnet18|efficientnet-lite0 train|eval
"""
import resource
import sys
import time

import torch
from torch import nn
import torchvision

BATCH, SIZE = 8, 448


class SamePadConv(nn.Conv2d):
    """Convolution with TensorFlow "SAME" padding (bias-free)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((-(-ih // s) - 1) * s + k - ih, 0)
        pw = max((-(-iw // s) - 1) * s + k - iw, 0)
        x = nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return super().forward(x)


def conv_bn(cin, cout, k, s, groups=1):
    return [SamePadConv(cin, cout, k, s, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]


class MBConv(nn.Module):
    def __init__(self, k, s, e, cin, cout):
        super().__init__()
        mid = cin * e
        layers = []
        if e != 1:
            layers += conv_bn(cin, mid, 1, 1) + [nn.ReLU6()]
        layers += conv_bn(mid, mid, k, s, groups=mid) + [nn.ReLU6()]
        layers += conv_bn(mid, cout, 1, 1)
        self.body = nn.Sequential(*layers)
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return y + x if self.skip else y


def efficientnet_lite0_blocks():
    """EfficientNet-Lite0 up to its last MBConv block (320 channels, stride 32)."""
    stages = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
    layers = conv_bn(3, 32, 3, 2) + [nn.ReLU6()]
    for r, k, s, e, cin, cout in stages:
        layers.append(MBConv(k, s, e, cin, cout))
        layers += [MBConv(k, 1, e, cout, cout) for _ in range(r - 1)]
    return nn.Sequential(*layers)


def efficientnet_lite0_head():
    """EfficientNet-Lite0 up to its head convolution and ReLU6 (1280 channels, stride 32)."""
    return nn.Sequential(*efficientnet_lite0_blocks(), *conv_bn(320, 1280, 1, 1), nn.ReLU6())


def resnet18_layer4():
    net = torchvision.models.resnet18()
    return nn.Sequential(*list(net.children())[:-2])


def main():
    _, name, mode = sys.argv[1:4] if sys.argv[1] == "--case" else (None, *sys.argv[1:3])
    steps = int(__import__("os").environ.get("DRA_BENCH_STEPS", "3"))
    torch.manual_seed(0)
    model = resnet18_layer4() if name == "resnet18" else efficientnet_lite0_blocks()
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    train = mode == "train"
    model.train(train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    elapsed = 0.0
    for i in range(steps + 1):
        start = time.perf_counter()
        if train:
            opt.zero_grad()
            model(x).mean().backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
        if i > 0:
            elapsed += time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(steps * BATCH / elapsed, peak)


if __name__ == "__main__":
    main()
