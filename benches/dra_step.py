"""PyTorch side of benches/dra_step.rs: the DRA workload of the reference code, printed as
`images/s peak-MiB [forward-s backward-s optimiser-s]`.

Usage: python benches/dra_step.py --case resnet18|efficientnet-lite0|efficientnet-lite0-head train|eval
(DRA_BENCH_IMG, DRA_BENCH_BATCH, DRA_BENCH_STEPS as for the Rust side.)
"""
import math
import os
import resource
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from backbones import efficientnet_lite0_blocks, efficientnet_lite0_head, resnet18_layer4  # noqa: E402

N_REF, TOPK, MARGIN = 5, 0.1, 5.0


def topk_mean(x):
    n = x.shape[0]
    x = x.reshape(n, -1)
    k = max(int(x.shape[1] * TOPK), 1)
    return x.topk(k, dim=1).values.mean(1)


class Dra(nn.Module):
    def __init__(self, backbone, c):
        super().__init__()
        self.backbone = backbone
        self.seen = nn.Conv2d(c, 1, 1)
        self.pseudo = nn.Conv2d(c, 1, 1)
        self.res_conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.res_score = nn.Conv2d(c, 1, 1)
        self.fc1, self.fc2 = nn.Linear(c, 256), nn.Linear(256, 1)

    def heads(self, f, ref):
        g_s = topk_mean(self.seen(f).abs())
        g_p = topk_mean(self.pseudo(f).abs())
        g_r = topk_mean(self.res_score(self.res_conv(ref - f)).abs())
        g_n = self.fc2(torch.relu(self.fc1(f.mean((2, 3))))).abs().reshape(-1)
        return [g_s, g_p, g_r, g_n]

    def forward(self, x):
        """x = [references; queries]; per-head scores averaged over 2 scales."""
        out = None
        for s in range(2):
            xs = x[:, :, :: 2**s, :: 2**s]
            f = self.backbone(xs)
            ref = f[:N_REF].mean(0, keepdim=True)
            h = self.heads(f[N_REF:], ref)
            out = h if out is None else [a + b for a, b in zip(out, h)]
        return [o / 2 for o in out]


def deviation(scores, t):
    r = torch.randn(5000)
    z = (scores - r.mean()) / r.std()
    return ((1 - t) * z.abs() + t * torch.relu(MARGIN - z)).mean()


def main():
    _, name, mode = sys.argv[1:4]
    img = int(os.environ.get("DRA_BENCH_IMG", "448"))
    batch = int(os.environ.get("DRA_BENCH_BATCH", "48"))
    steps = int(os.environ.get("DRA_BENCH_STEPS", "1"))
    torch.manual_seed(0)
    backbone, c = {
        "resnet18": (resnet18_layer4, 512),
        "efficientnet-lite0": (efficientnet_lite0_blocks, 320),
        "efficientnet-lite0-head": (efficientnet_lite0_head, 1280),
    }[name]
    backbone = backbone()
    model = Dra(backbone, c)
    normal = 2 * batch // 3
    labels = torch.tensor([2 if i >= normal else (0 if i % 2 == 0 else 1) for i in range(batch)])  # 0 n, 1 pseudo, 2 seen
    x = torch.randn(N_REF + batch, 3, img, img)
    train = mode == "train"
    model.train(train)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)
    total = fwd = bwd = step = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        if train:
            g_s, g_p, g_r, g_n = model(x)
            seen, pseudo, normal_ = labels == 2, labels == 1, labels == 0
            loss = (deviation(g_s[~pseudo], seen[~pseudo].float()) + deviation(g_p[~seen], pseudo[~seen].float())
                    + deviation(g_r, (~normal_).float()) + deviation(g_n, normal_.float()))
            loss.item()
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            t3 = time.perf_counter()
            if i > 0:
                fwd, bwd, step = fwd + t1 - t0, bwd + t2 - t1, step + t3 - t2
        else:
            with torch.no_grad():
                refs = [model.backbone(x[:N_REF, :, :: 2**s, :: 2**s]).mean(0, keepdim=True) for s in range(2)] if i == 0 else refs
                out = None
                for s in range(2):
                    h = model.heads(model.backbone(x[N_REF:, :, :: 2**s, :: 2**s]), refs[s])
                    score = h[0] + h[1] + h[2] - h[3]
                    out = score if out is None else out + score
        if i > 0:
            total += time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = f" {fwd / steps} {bwd / steps} {step / steps}" if train else ""
    print(f"{steps * batch / total} {peak}{extra}")


if __name__ == "__main__":
    main()
