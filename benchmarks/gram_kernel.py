"""The Gram matrix's own backward against autograd's, one loss step at a time.

    python benchmarks/gram_kernel.py --weights ../shared/weights/vgg19_features_tvnorm.pth --size 256

One step is the product's loss (``StyleTransfer.forward``: VGG19, the paper's five style layers and
conv4_2) and its backward to the image, as ``fit`` takes it. "autograd" is the Gram as it was before:
``F F^T`` on ``[N, C, H*W]`` (a copy of channels-last maps) with autograd's two-product backward;
"product" is ``loss.functional``'s ``_SymmetricProduct`` on a free view. The two run alternately, so
a machine that slows down part way slows both. Prints a markdown table: seconds per step (median),
the ratio, and the largest difference between the two image gradients relative to their size.
"""
import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nst_lightning.loss import functional
from nst_lightning.model.module import StyleTransfer


class _AutogradProduct:
    """The old kernel: ``X X^T`` on ``[N, C, M]``; autograd differentiates it."""

    @staticmethod
    def apply(flat, positions_first):
        return flat @ flat.transpose(1, 2)


def _channels_first_view(features):
    n, c, h, w = features.shape
    return features.reshape(n, c, h * w), False


@contextlib.contextmanager
def kernel(name):
    if name == "product":
        yield
        return
    saved = functional._SymmetricProduct, functional._flat_view
    functional._SymmetricProduct, functional._flat_view = _AutogradProduct, _channels_first_view
    try:
        yield
    finally:
        functional._SymmetricProduct, functional._flat_view = saved


def step(model, image, bf16):
    image.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(image)["loss"]
    loss.backward()
    return image.grad.clone()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random", help="VGG19 weights (a .pth file); random ones time the same")
    parser.add_argument("--size", type=int, default=256, help="the image's side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per kernel and setting")
    args = parser.parse_args()
    torch.manual_seed(0)
    photo, painting = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
    print(f"{args.size} px, {torch.get_num_threads()} threads, median of {args.steps} steps")
    print("| precision, layout | autograd Gram (s/step) | product Gram (s/step) | ratio | gradient difference |")
    print("| --- | --- | --- | --- | --- |")
    for bf16, channels_last in [(True, True), (False, True), (False, False)]:
        model = StyleTransfer(weights=args.weights)
        model.compute_targets(photo, painting)
        model.vgg.use_channels_last(channels_last)
        image = photo.clone().requires_grad_(True)
        times, grads = {"autograd": [], "product": []}, {}
        for k in range(args.steps + 1):
            for name in times:
                with kernel(name):
                    start = time.perf_counter()
                    grads[name] = step(model, image, bf16)
                    if k:  # the first step of each warms the allocator and oneDNN's caches
                        times[name].append(time.perf_counter() - start)
        old, new = (statistics.median(times[name]) for name in ("autograd", "product"))
        diff = ((grads["product"] - grads["autograd"]).abs().max() / grads["autograd"].abs().max()).item()
        label = f"{'bf16-mixed' if bf16 else 'fp32'}, {'NHWC' if channels_last else 'NCHW'}"
        print(f"| {label} | {old:.3f} | {new:.3f} | {new / old:.3f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
