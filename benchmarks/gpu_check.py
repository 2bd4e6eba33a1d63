"""Is the optimisation using the GPU? One command, at most ~5 minutes on an H100/H200.

    python benchmarks/gpu_check.py                     # on the GPU machine
    python benchmarks/gpu_check.py --smoke             # anywhere, tiny sizes, seconds (tests/scale/test_gpu_check.py)
    python benchmarks/gpu_check.py --peak-tflops 989 67   # a GPU the table below does not know: bf16 and fp32 peaks

It prints markdown tables:

1. ``Trainer.fit`` steps/s at 512 px for K = 1, 4 and 16 photos optimised together (one ``[K, 3, H, W]``
   image, as ``batch --batch_size K`` runs), in bf16-mixed and fp32, and the achieved TFLOP/s as a
   fraction of the GPU's bf16 and fp32 peaks;
2. host-device synchronisations per training step (``torch.cuda.set_sync_debug_mode``: each one is
   a warning), with the default ``sync_every`` (50 on a GPU) and with 1 (the old behaviour);
3. one tiled 4K step (3840 px long side, ``tile_size`` 1024, bf16-mixed): seconds per step;
4. ``Trainer.fit`` against the plain PyTorch loop of ``benchmarks/benchmark.py`` at 512 px, K = 1.

FLOPs per step are counted, not estimated: ``torch.utils.flop_counter.FlopCounterMode`` around one
step of the plain loop at that size (VGG19's convolutions through ``conv5_1`` and the Gram matrices'
matmuls, forward and backward), times K. The backward computes the activations' gradients only (the
weights are frozen), so a step is ~2x the forward pass, not the ~3x of training a network; the
script prints the forward count and the ratio it measured. Fractions of peak are of *these* FLOPs:
the tiled step also recomputes each tile's forward pass and its halo, which is not counted as work.

The peaks are NVIDIA's datasheet figures, dense (without the 2:4 sparsity the headline numbers
assume), for the GPU ``torch.cuda.get_device_name`` names; ``--peak-tflops`` overrides them. In fp32,
cuDNN convolutions run as TF32 on the tensor cores by default (``torch.backends.cudnn.allow_tf32``), so
an fp32 run can exceed the fp32 (CUDA-core) peak: the TF32 column is the fair one for it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import (  # noqa: E402  (the plain loop and the step timer are benchmark.py's)
    CONTENT,
    LOG_EVERY,
    STYLE,
    Case,
    PlainLoop,
    StepTimer,
    auto_channels_last,
    cli_callbacks,
    machine_description,
    quiet_lightning,
)

from nst_lightning import StyleTransfer, StyleTransferData  # noqa: E402


@dataclass(frozen=True)
class Peak:
    """Dense TFLOP/s from NVIDIA's datasheets: bf16 and TF32 on the tensor cores, fp32 on the CUDA cores."""

    name: str
    bf16: float
    tf32: Optional[float]
    fp32: float
    source: str


# Checked in this order: the first name contained in torch.cuda.get_device_name wins.
PEAKS = [
    Peak("H200", 989.4, 494.7, 66.9, "NVIDIA H200 datasheet (SXM; the same compute as H100 SXM)"),
    Peak("H100 PCIe", 756.5, 378.0, 51.2, "NVIDIA H100 datasheet, PCIe"),
    Peak("H100", 989.4, 494.7, 66.9, "NVIDIA H100 datasheet, SXM"),
    Peak("A100", 312.0, 156.0, 19.5, "NVIDIA A100 datasheet"),
    Peak("L40S", 362.1, 183.0, 91.6, "NVIDIA L40S datasheet"),
    Peak("L4", 121.0, 60.0, 30.3, "NVIDIA L4 datasheet"),
    Peak("A10", 125.0, 62.5, 31.2, "NVIDIA A10 datasheet"),
]


def find_peak(device: torch.device, override: Optional[list[float]]) -> Optional[Peak]:
    if override:
        return Peak("given", override[0], None, override[1], "--peak-tflops")
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for peak in PEAKS:
        if all(word in name for word in peak.name.split()):
            return peak
    return None


# ---- what is measured ----------------------------------------------------------------------------


class SyncCounter:
    """Counts the host-device synchronisations of steps ``first`` .. ``last - 1`` with CUDA's sync
    debug mode, which warns at each synchronising call (``.item()``, copies to and from the host...).
    Two callbacks: ``start`` after the step timer's ``torch.cuda.synchronize`` at ``first``, ``stop``
    before the timer's at ``last``, so that the timer's own waits are not counted."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.count = first, last, 0
        self._caught: Optional[warnings.catch_warnings] = None
        self._records: list = []
        self._marks: list[int] = []  # syncs so far at the start of each step
        self.steps_with_syncs = 0
        counter = self

        class Start(pl.Callback):
            def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
                if batch_idx == counter.first:
                    counter._caught = warnings.catch_warnings(record=True)
                    counter._records = counter._caught.__enter__()
                    warnings.simplefilter("always")
                    torch.cuda.set_sync_debug_mode("warn")
                if counter._caught is not None:
                    counter._marks.append(len(counter._records))

        class Stop(pl.Callback):
            def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
                if batch_idx == counter.last:
                    counter.stop()

        self.start, self.stop_callback = Start(), Stop()

    def stop(self) -> None:
        if self._caught is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._caught.__exit__(None, None, None)
            self.count = sum("synchroniz" in str(record.message) for record in self._records)
            marks = [*self._marks, len(self._records)]
            # After the first wait of a step, the queue is empty: later reads in that step cost little.
            self.steps_with_syncs = sum(later > earlier for earlier, later in zip(marks, marks[1:]))
            self._caught = None


def fit_photos(size: int, photos: int, precision: str, device: torch.device, steps: int, warmup: int, **options) -> dict:
    """One ``Trainer.fit`` of K photos as the CLI sets it up (its callbacks and logger, progress bar
    off), timed over ``steps`` steps after ``warmup``; with ``count_syncs``, their syncs counted too."""
    count_syncs = options.pop("count_syncs", False)
    timer = StepTimer(first=warmup, steps=steps, device=device)
    callbacks: list[pl.Callback] = [timer]
    syncs = SyncCounter(warmup, warmup + steps) if count_syncs and device.type == "cuda" else None
    if syncs is not None:
        callbacks = [syncs.stop_callback, timer, syncs.start]
    with tempfile.TemporaryDirectory(prefix="nst_gpu_check_") as logdir:
        trainer = pl.Trainer(
            accelerator=device.type, devices=1, precision=precision, max_steps=warmup + steps + 1,
            log_every_n_steps=LOG_EVERY, logger=TensorBoardLogger(logdir, name="nst", version="", default_hp_metric=False),
            callbacks=[*cli_callbacks(), *callbacks], default_root_dir=logdir,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        data = StyleTransferData([CONTENT] * photos if photos > 1 else CONTENT, STYLE, image_size=size)
        model = StyleTransfer(weights="random", **options)
        trainer.fit(model, datamodule=data)
        if syncs is not None:
            syncs.stop()
    result = {"s_per_step": timer.seconds_per_step, "shape": tuple(model.image.shape)}
    if syncs is not None:
        result["syncs_per_step"] = syncs.count / steps
        result["steps_with_syncs"] = syncs.steps_with_syncs
    return result


def plain_loop(size: int, precision: str, device: torch.device) -> PlainLoop:
    """benchmark.py's plain loop, K = 1, in the layout StyleTransfer's ``memory_format: auto`` picks."""
    return PlainLoop(Case(size, "adam", precision, channels_last=auto_channels_last(Case(size, "adam", precision), device)), "random", device)


def step_flops(loop: PlainLoop) -> tuple[int, int]:
    """FLOPs of one forward pass and of one step (forward and backward) of ``loop``, counted."""
    with FlopCounterMode(display=False) as forward:
        with torch.no_grad():
            loop.eager_loss()
    with FlopCounterMode(display=False) as step:
        loop.step()
    return forward.get_total_flops(), step.get_total_flops()


# ---- the report ----------------------------------------------------------------------------------


def fraction(tflops: float, peak: Optional[float]) -> str:
    return f"{tflops / peak:.1%}" if peak else "n/a"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512], help="long sides of the photos (default 512)")
    parser.add_argument("--photos", type=int, nargs="+", default=[1, 4, 16], help="K, photos optimised together (default 1 4 16)")
    parser.add_argument("--precisions", nargs="+", default=["bf16-mixed", "32"], help="Lightning precisions (default bf16-mixed 32)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per run (default 50: one host read at sync_every 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each timed window")
    parser.add_argument("--tiled-size", type=int, default=3840, help="long side of the tiled step (default 3840: 4K)")
    parser.add_argument("--tile-size", type=int, default=1024, help="its tile_size (default 1024)")
    parser.add_argument("--tiled-steps", type=int, default=3, help="timed tiled steps (default 3)")
    parser.add_argument("--peak-tflops", type=float, nargs=2, metavar=("BF16", "FP32"), help="the GPU's dense peaks, if the table lacks it")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and steps: that the script runs, on any machine")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.photos, args.precisions = [32], [1, 2], ["32"]
        args.steps, args.warmup, args.tiled_size, args.tile_size, args.tiled_steps = 2, 1, 64, 32, 1
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    quiet_lightning()
    warnings.filterwarnings("ignore", message=r".*(Checkpoint directory|log_every_n_steps).*")
    started = time.perf_counter()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    peak = find_peak(device, args.peak_tflops)
    print("## Machine\n")
    print(machine_description(device))
    if peak is not None:
        tf32 = f", TF32 {peak.tf32:g}" if peak.tf32 else ""
        print(f"\nPeaks (dense TFLOP/s, {peak.source}): bf16 {peak.bf16:g}{tf32}, fp32 {peak.fp32:g}.")
    else:
        print("\nPeaks: unknown for this device (give --peak-tflops BF16 FP32); fractions are n/a.")
    if device.type == "cuda":
        print(f"TF32: cuDNN {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}.")
    print(f"\nCommand: `python {' '.join(sys.argv)}`", flush=True)

    fits: dict[tuple[int, int, str], dict] = {}
    flops: dict[tuple[int, str], tuple[int, int]] = {}
    loops: dict[tuple[int, str], PlainLoop] = {}
    for size in args.sizes:
        print(f"\n## Trainer.fit at {size} px ({args.steps} timed steps after {args.warmup})\n")
        print("| K photos | precision | image | steps/s | s/step | GFLOP/step | TFLOP/s | of bf16 peak | of TF32 peak | of fp32 peak |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for precision in args.precisions:
            loops[size, precision] = plain_loop(size, precision, device)
            flops[size, precision] = step_flops(loops[size, precision])
            for photos in args.photos:
                run = fits[size, photos, precision] = fit_photos(size, photos, precision, device, args.steps, args.warmup)
                work = flops[size, precision][1] * photos / 1e12
                rate = work / run["s_per_step"]
                shape = "x".join(map(str, run["shape"]))
                tf32 = peak.tf32 if peak else None
                print(
                    f"| {photos} | {precision} | {shape} | {1 / run['s_per_step']:.2f} | {run['s_per_step']:.4f} | {work * 1e3:.4g} "
                    f"| {rate:.3g} | {fraction(rate, peak and peak.bf16)} | {fraction(rate, tf32)} | {fraction(rate, peak and peak.fp32)} |",
                    flush=True,
                )
        for precision in args.precisions:
            forward, step = flops[size, precision]
            print(
                f"\nFLOPs at {size} px ({precision}), counted: forward {forward / 1e9:.1f} G, "
                f"step {step / 1e9:.1f} G ({step / forward:.2f}x the forward)."
            )

    size, precision = args.sizes[0], args.precisions[0]
    print(f"\n## Host syncs per training step ({size} px, K = 1, {precision}; torch.cuda.set_sync_debug_mode)\n")
    if device.type == "cuda":
        print(f"| sync_every | syncs per step | steps with a sync (of {args.steps}) | s/step |\n| --- | --- | --- | --- |")
        for sync_every in (None, 1):
            run = fit_photos(size, 1, precision, device, args.steps, args.warmup, sync_every=sync_every, count_syncs=True)
            label = "default (50 on a GPU)" if sync_every is None else str(sync_every)
            print(f"| {label} | {run['syncs_per_step']:.2f} | {run['steps_with_syncs']} | {run['s_per_step']:.4f} |", flush=True)
        print(
            f"\nWhat remains with the default: the logger's writes every {LOG_EVERY} steps (one read per scalar; "
            "after the first the queue is empty) and the reads every sync_every steps."
        )
    else:
        print("n/a: CUDA's sync debug mode needs a GPU (tests/model/test_host_sync.py counts the reads on a CPU).")

    print(f"\n## One tiled step at {args.tiled_size} px (tile_size {args.tile_size}, {precision})\n")
    tiled = fit_photos(args.tiled_size, 1, precision, device, args.tiled_steps, 1, tile_size=args.tile_size)
    shape = tiled["shape"]
    pixels = shape[-2] * shape[-1]
    base = flops[size, precision][1] * pixels / (fits[size, 1, precision]["shape"][-2] * fits[size, 1, precision]["shape"][-1])
    rate = base / 1e12 / tiled["s_per_step"]
    print(
        f"{shape[-1]}x{shape[-2]}: {tiled['s_per_step']:.3f} s/step; the untiled step's FLOPs (scaled by pixels from {size} px: "
        f"{base / 1e12:.3g} TFLOP) at {rate:.3g} TFLOP/s, {fraction(rate, peak and peak.bf16)} of the bf16 peak.",
        flush=True,
    )

    print(f"\n## Trainer.fit against the plain loop of benchmarks/benchmark.py ({size} px, K = 1)\n")
    print("| precision | plain loop s/step | Trainer.fit s/step | fit / plain |\n| --- | --- | --- | --- |")
    for precision in args.precisions:
        loops[size, precision].seconds_per_step(args.warmup)
        plain = loops[size, precision].seconds_per_step(args.steps)
        fitted = fits[size, 1, precision]["s_per_step"]
        print(f"| {precision} | {plain:.4f} | {fitted:.4f} | {fitted / plain:.3f} |", flush=True)
    print(f"\nTotal: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
