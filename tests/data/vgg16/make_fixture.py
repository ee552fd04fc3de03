"""Writes the VGG16 fixture of tests/backbone.rs: torchvision's VGG16 structure ("D", no
BatchNorm) at 1/16 of its widths, seeded random weights saved as a torchvision state dict
(`features.N.*` and a small `classifier.*` the loader must ignore), and the pool2…pool5 maps
of a seeded input. Run from this folder: python3 make_fixture.py (torch, torchvision and
safetensors from PyPI)."""

import torch
from safetensors.torch import save_file
from torchvision.models.vgg import make_layers

WIDTHS = [4, 8, 16, 32, 32]
CFG = [WIDTHS[0]] * 2 + ["M"] + [WIDTHS[1]] * 2 + ["M"]
for w in WIDTHS[2:]:
    CFG += [w] * 3 + ["M"]

torch.manual_seed(0)
features = make_layers(CFG, batch_norm=False)
classifier = torch.nn.Sequential(torch.nn.Linear(WIDTHS[-1], 10))
state = {f"features.{k}": v for k, v in features.state_dict().items()}
state.update({f"classifier.0.{k}": v for k, v in classifier[0].state_dict().items()})
torch.save(state, "vgg16_narrow.pth")

x = torch.randn(2, 3, 64, 64)
pools = []
with torch.no_grad():
    h = x
    for layer in features:
        h = layer(h)
        if isinstance(layer, torch.nn.MaxPool2d):
            pools.append(h.clone())
save_file(
    {"input": x, **{f"pool{i + 1}": p.contiguous() for i, p in enumerate(pools)}},
    "vgg16_narrow_pools.safetensors",
)
print([tuple(p.shape) for p in pools])
