"""PyTorch side of benches/conv_layers.rs: the same convolution layers, forward pass, weight
gradient and input gradient, the shortest of three runs each, in seconds, as table rows.

Usage: python benches/conv_layers.py  (DRA_BENCH_IMG, default 448; DRA_BENCH_BATCH, default 16)
"""
import os
import time

import torch


def shortest(f):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    torch.set_num_threads(os.cpu_count())
    n = int(os.environ.get("DRA_BENCH_BATCH", 16))
    img = int(os.environ.get("DRA_BENCH_IMG", 448))
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"batch {n}, {img}² input, seconds per pass (PyTorch {torch.__version__}, {capability} code, "
          f"{torch.get_num_threads()} threads)")
    print()
    print("| layer (channels in → out, map, kernel, stride) | forward | weight gradient | input gradient |")
    print("|---|---|---|---|")
    # as benches/conv_layers.rs: (channels in, out, map, kernel, stride, padding before, after);
    # EfficientNet-Lite0's stem pads as TensorFlow's "same" does, the odd pixel after
    layers = [(3, 64, img, 7, 2, 3, 3), (3, 32, img, 3, 2, 0, 1), (64, 64, img // 4, 3, 1, 1, 1),
              (64, 128, img // 4, 3, 2, 1, 1), (64, 128, img // 4, 1, 2, 0, 0),
              (128, 128, img // 8, 3, 1, 1, 1), (256, 256, img // 16, 3, 1, 1, 1),
              (512, 512, img // 32, 3, 1, 1, 1), (1280, 1280, img // 32, 3, 1, 1, 1)]
    with torch.no_grad():
        for ci, co, size, k, stride, before, after in layers:
            x, w = torch.randn(n, ci, size, size), torch.randn(co, ci, k, k)
            g = torch.randn(n, co, size // stride, size // stride)
            # an asymmetric padding is a padded copy of the input first, as the reference
            # implementation's EfficientNet does it
            symmetric = before == after
            padded = x if symmetric else torch.nn.functional.pad(x, (before, after, before, after))
            p = before if symmetric else 0
            geometry = ([stride, stride], [p, p], [1, 1], False, [0, 0], 1)

            def backward(which):
                return torch.ops.aten.convolution_backward(g, padded, w, None, *geometry, which)

            def conv():
                xp = x if symmetric else torch.nn.functional.pad(x, (before, after, before, after))
                return torch.nn.functional.conv2d(xp, w, stride=stride, padding=p)

            forward = shortest(conv)
            weight = shortest(lambda: backward([False, True, False]))
            inputs = shortest(lambda: backward([True, False, False]))
            print(f"| {ci} → {co}, {size}², {k}×{k}, {stride}{'' if symmetric else ', same'} "
                  f"| {forward:.3f} | {weight:.3f} | {inputs:.3f} |")


if __name__ == "__main__":
    main()
