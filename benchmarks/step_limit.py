"""The step against the machine's limit: its FLOPs and seconds, and what the same cores do at best.

    python benchmarks/step_limit.py                      # 512x384, fp32 and bf16 where native, this machine's devices
    python benchmarks/step_limit.py --size 256 --rounds 3

One step is the product's: ``StyleTransfer.forward`` (VGG19 through conv5_1, the five style layers' Gram
matrices, conv4_2) on a W x H image, its backward to the image and Adam's update, in fp32 and, where
the device computes bf16 natively (``run/precision.native_bf16``: AVX512-BF16 or AMX on a CPU, any
recent GPU), under bf16 autocast as ``--trainer.precision bf16-mixed`` runs it. Its FLOPs are counted
by ``torch.utils.flop_counter.FlopCounterMode`` on one step (convolutions and matrix products, forward
and backward). The ceilings, on the same cores in the same process:

- **the largest VGG19 convolution alone**: conv1_2, conv2_2, conv3_2 and conv4_2 each cost the same
  FLOPs at any size (channels double as the sides halve); each runs alone, forward and the backward to
  its input with its weights frozen, as in the step, at the size it has in the step; the best of them;
- **a large matmul**: ``N x N`` by ``N x N`` (``--matmul``, 2048).

Everything runs in rounds, each measuring all of them once after a warm-up, and the medians are
reported: load from other processes falls on all alike. Prints a markdown table: GFLOP, seconds,
GFLOP/s, and the step's GFLOP/s as a fraction of each ceiling, with the machine's CPU features.

``--costs`` adds a before/after timing of a step of the regions' loss, alternating: the weighted Gram
matrix on a copy of channels-last maps (as it was) against the symmetric product on a free view.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark import machine_description  # noqa: E402  (benchmarks/ is on the path as the script's folder)

from nst_lightning.loss import functional  # noqa: E402
from nst_lightning.loss.functional import gram_matrix, relative_squared_error  # noqa: E402
from nst_lightning.loss.guided import layer_masks  # noqa: E402
from nst_lightning.model.module import StyleTransfer  # noqa: E402
from nst_lightning.run.precision import cpu_flags, native_bf16  # noqa: E402

LARGEST_CONVOLUTIONS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def counted(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class Step:
    """The product's step on one image: the loss, its backward, Adam."""

    def __init__(self, size: tuple[int, int], device: torch.device, bf16: bool, weights: str) -> None:
        torch.manual_seed(0)
        photo, painting = torch.rand(1, 3, *size, device=device), torch.rand(1, 3, *size, device=device)
        self.model = StyleTransfer(weights=weights).to(device)
        self.model.vgg.use_channels_last(device.type == "cpu" or bf16)  # memory_format auto
        self.model.compute_targets(photo, painting)
        self.image = nn.Parameter(photo.clone())
        self.optimizer = torch.optim.Adam([self.image], lr=0.02)
        self.device, self.bf16 = device, bf16

    def __call__(self) -> None:
        self.optimizer.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(self.image)["loss"]
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.image.clamp_(0, 1)


class Convolution:
    """One of VGG19's convolutions alone, forward and backward to its input, weights frozen."""

    def __init__(self, step: Step, name: str) -> None:
        vgg = step.model.vgg
        index = vgg.layer_index(name)
        conv = vgg.features[index - 1]  # the layer's name is its ReLU's output; the convolution is before it
        sides = [s // 2 ** LARGEST_CONVOLUTIONS.index(name) for s in step.image.shape[-2:]]
        dtype = torch.bfloat16 if step.bf16 else torch.float32
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1).to(step.device, dtype)
        self.conv.requires_grad_(False)
        layout = torch.channels_last if vgg.channels_last else torch.contiguous_format
        self.conv.to(memory_format=layout)
        self.x = torch.rand(1, conv.in_channels, *sides, device=step.device, dtype=dtype).contiguous(memory_format=layout)
        self.x.requires_grad_(True)

    def __call__(self) -> None:
        self.x.grad = None
        self.conv(self.x).sum().backward()


class Matmul:
    def __init__(self, n: int, device: torch.device, bf16: bool) -> None:
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.a, self.b = torch.rand(n, n, device=device, dtype=dtype), torch.rand(n, n, device=device, dtype=dtype)

    def __call__(self) -> None:
        self.a @ self.b


class RegionsStep(Step):
    """A step of the regions' loss: each style layer's Gram weighted by a mask of the image's left half
    (``loss.guided``'s masks at each layer, downsampled), against the painting's."""

    def __init__(self, size: tuple[int, int], device: torch.device, bf16: bool, weights: str) -> None:
        super().__init__(size, device, bf16, weights)
        vgg = self.model.vgg
        mask = torch.zeros(1, 1, *size, device=device)
        mask[..., : size[1] // 2] = 1
        self.names = list(self.model.loss_weights.style_layers)
        self.masks = layer_masks(mask, vgg.features, {n: vgg.layer_index(n) for n in self.names}, "downsample")
        with torch.no_grad():
            features = vgg(torch.rand(1, 3, *size, device=device))
            self.targets = {n: gram_matrix(features[n], self.masks[n]) for n in self.names}

    def __call__(self) -> None:
        self.optimizer.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features = self.model.vgg(self.image)
            loss = sum(relative_squared_error(gram_matrix(features[n], self.masks[n]), self.targets[n]) for n in self.names)
        loss.backward()
        self.optimizer.step()


def _copied_view(features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The weighted Gram's flat map as it was: ``[N, C, H*W]``, a copy of a channels-last map."""
    n, c, h, w = features.shape
    return features.reshape(n, c, h * w), False


@contextlib.contextmanager
def weighted_gram(how: str):
    saved = functional._flat_view
    functional._flat_view = _copied_view if how == "copy" else saved
    try:
        yield
    finally:
        functional._flat_view = saved


def cost_rows(device: torch.device, size: tuple[int, int], args: argparse.Namespace) -> list[str]:
    """The weighted Gram's cost, before and after, alternating in rounds: seconds per step (median)."""
    cases = []
    for bf16 in [False] + ([True] if native_bf16(device.type) else []):
        regions = RegionsStep(size, device, bf16, args.weights)

        def copy_step(regions: RegionsStep = regions) -> None:
            with weighted_gram("copy"):
                regions()

        cases.append((f"{'bf16-mixed' if bf16 else 'fp32'} regions step: weighted Gram on a copy, on a free view", copy_step, regions))
    rows = []
    for label, before, after in cases:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for round_ in range(args.rounds + 1):
            times["before"].append(timed(before, device))
            times["after"].append(timed(after, device))
        old, new = (statistics.median(values[1:]) for values in times.values())
        rows.append(f"| {device.type} | {size[1]}x{size[0]} | {label} | {old:.3f} | {new:.3f} | **{new / old:.3f}** |")
        print(rows[-1], flush=True)
    return rows


def measure(work: dict[str, Callable[[], None]], device: torch.device, rounds: int) -> dict[str, tuple[int, float]]:
    """Each piece of work's FLOPs and median seconds over ``rounds`` rounds (after one warm-up round)."""
    flops = {name: counted(fn) for name, fn in work.items()}
    seconds: dict[str, list[float]] = {name: [] for name in work}
    for round_ in range(rounds + 1):
        for name, fn in work.items():
            elapsed = timed(fn, device)
            if round_:
                seconds[name].append(elapsed)
    return {name: (flops[name], statistics.median(seconds[name])) for name in work}


def limit_rows(device: torch.device, size: tuple[int, int], args: argparse.Namespace) -> list[str]:
    rows = []
    precisions = [False] + ([True] if native_bf16(device.type) else [])
    for bf16 in precisions:
        step = Step(size, device, bf16, args.weights)
        work: dict[str, Callable[[], None]] = {"step": step}
        work.update({name: Convolution(step, name) for name in LARGEST_CONVOLUTIONS})
        work["matmul"] = Matmul(args.matmul, device, bf16)
        result = measure(work, device, args.rounds)
        rate = {name: flops / seconds / 1e9 for name, (flops, seconds) in result.items()}
        best = max(LARGEST_CONVOLUTIONS, key=rate.get)
        flops, seconds = result["step"]
        rows.append(
            f"| {device.type} | {'bf16-mixed' if bf16 else 'fp32'} | {size[1]}x{size[0]} | {flops / 1e9:.1f} | {seconds:.3f} "
            f"| {rate['step']:.0f} | {best}: {rate[best]:.0f} | **{rate['step'] / rate[best]:.2f}** "
            f"| {rate['matmul']:.0f} | **{rate['step'] / rate['matmul']:.2f}** |"
        )
        print(rows[-1], flush=True)
        print("  each convolution alone, GFLOP/s: " + ", ".join(f"{n} {rate[n]:.0f}" for n in LARGEST_CONVOLUTIONS), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="the image's long side; its short side is 3/4 of it")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each measures everything once)")
    parser.add_argument("--matmul", type=int, default=2048, help="N of the N x N matmul")
    parser.add_argument("--weights", default="random", help="VGG19 weights; random ones time the same")
    parser.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda where there is one)")
    parser.add_argument("--costs", action="store_true", help="also the regions' weighted Gram, before and after (see above)")
    args = parser.parse_args()
    devices = [torch.device(d) for d in (args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))]
    size = (args.size * 3 // 4, args.size)
    flags = sorted(cpu_flags() & {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma"})
    print(f"{machine_description(devices[-1])}; CPU features: {', '.join(flags) or 'none listed'}")
    print(f"median of {args.rounds} rounds; a step: StyleTransfer's loss, its backward, Adam")
    print()
    print("| device | precision | image | step GFLOP | step s | step GFLOP/s | largest convolution alone, GFLOP/s "
          "| step / convolution | matmul GFLOP/s | step / matmul |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for device in devices:
        limit_rows(device, size, args)
    if args.costs:
        print()
        print("| device | image | step | before, s/step | after, s/step | after / before |")
        print("| --- | --- | --- | --- | --- | --- |")
        for device in devices:
            cost_rows(device, size, args)


if __name__ == "__main__":
    main()
