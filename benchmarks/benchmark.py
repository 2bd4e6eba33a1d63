"""What nst_lightning's Lightning machinery costs per step, against the same optimisation written by hand.

One process runs the same Gatys et al. (2015) optimisation (same VGG19 layers, image size, loss
weights, optimizer, precision and number of steps) two ways, alternately, after a warm-up:

  (a) plain      a PyTorch loop written below: frozen ``VGG19Features``, targets computed once,
                 ``zero_grad(); loss.backward(); step()``, the loss of ``nst_lightning.loss.functional.weighted_losses``
                 (the very function ``StyleTransfer.forward`` calls);
  (b) Lightning  ``StyleTransfer`` + ``StyleTransferData`` through ``Trainer.fit``, with the checkpoint,
                 image-logging and result callbacks and the TensorBoard logger that the CLI adds, at
                 the CLI's default settings, progress bar on; in NCHW and NHWC layout and with
                 the module's defaults (``memory_format: auto``).
  (a0) naive     with ``--naive``: the plain loop over all of ``vgg19().features``, weights trainable.

It prints markdown tables: seconds per step (median over repeats), the ratio b/a (median of the
ratios of back-to-back runs, so that load from other processes cancels out as far as it can), and
peak memory per image size, each size measured in a fresh process. Speed does not depend on the
weight values, so the untrained VGG19 (``--weights random``, the default) needs no download.

    python benchmarks/benchmark.py --quick                  # under a minute on 2 CPU cores
    python benchmarks/benchmark.py --sizes 128 256 512 --steps 10 --warmup 2 --repeats 3   # docs/lab/performance.md
    python benchmarks/benchmark.py --profile --sizes 128    # where Lightning's own time per step goes
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import math
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import lightning
import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.profilers import SimpleProfiler
from torch import Tensor, nn

from nst_lightning import ImageLogger, SaveGeneratedImage, StepCheckpoint, StyleTransfer, StyleTransferData
from nst_lightning.callbacks.checkpoint import CHECKPOINT_DEFAULTS
from nst_lightning.loss.statistics import STYLE_STATISTICS
from nst_lightning.loss.total import LossWeights, weighted_losses
from nst_lightning.model.options import DEFAULT_LR, DEFAULT_STYLE_LAYERS
from nst_lightning.model.vgg import VGG19Features

CONTENT = "builtin:tubingen"
STYLE = "builtin:starry_night"
# The module's defaults, spelled out so that both ways are given the very same problem.
CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = tuple(DEFAULT_STYLE_LAYERS)
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 10.0
LBFGS_HISTORY = 100
# The CLI's defaults for work that happens every few steps (nst_lightning/run/cli.py).
IMAGE_EVERY = 50
LOG_EVERY = 10

# The ways timed. (a) is the reference: the loop anyone would write, NCHW. (b) is the same computation
# through Trainer.fit (its overhead is b/a). The channels_last rows are the same pair in NHWC layout,
# and "(b) defaults" is what a user gets without options (on a CPU: NHWC, memory_format auto).
PLAIN, LIGHTNING = "(a) plain loop", "(b) Lightning, NCHW"
PLAIN_CL, LIGHTNING_CL = "(a) plain + channels_last", "(b) Lightning, channels_last"
LIGHTNING_DEFAULT, COMPILED = "(b) Lightning, defaults", "(a) plain + torch.compile"
NAIVE = "(a0) naive loop: uncut, unfrozen VGG19"


@dataclass(frozen=True)
class Case:
    """One configuration to time. ``channels_last`` is StyleTransfer's ``memory_format`` (``None``: its
    default, ``auto``); ``compile`` exists for the plain loop only."""

    size: int
    optimizer: str
    precision: str
    channels_last: Optional[bool] = False
    compile: bool = False
    naive: bool = False  # the whole of vgg19().features, weights left trainable (plain loop only)
    style_loss: str = "gram"  # StyleTransfer's style_loss
    activation_checkpointing: bool = False  # StyleTransfer's (and the plain loop's VGG19's)
    tile_size: Optional[int] = None  # StyleTransfer's (Lightning only: the plain loop is the untiled reference)


# ---- the two ways --------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timestamp means what it says (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_images(size: int) -> tuple[Tensor, Tensor]:
    """Content and style images as the datamodule prepares them (same resizing, same sizes)."""
    data = StyleTransferData(CONTENT, STYLE, image_size=size)
    data.load()
    return data.content_image, data.style_image


def make_optimizer(name: str, image: nn.Parameter) -> torch.optim.Optimizer:
    """The optimizer StyleTransfer.configure_optimizers builds, with its default learning rates."""
    if name == "lbfgs":
        return torch.optim.LBFGS([image], lr=DEFAULT_LR["lbfgs"], max_iter=1, history_size=LBFGS_HISTORY)
    return torch.optim.Adam([image], lr=DEFAULT_LR["adam"])


class PlainLoop:
    """(a) The optimisation written out by hand: the reference Lightning's per-step time is compared with."""

    def __init__(self, case: Case, weights: str, device: torch.device) -> None:
        self.case, self.device = case, device
        content, style = (image.to(device) for image in load_images(case.size))
        layers = list(CONTENT_LAYERS + STYLE_LAYERS) + (["pool5"] if case.naive else [])
        self.vgg = VGG19Features(layers, weights, activation_checkpointing=case.activation_checkpointing).to(device)
        if case.naive:
            # What a first loop often does: all of vgg19().features (through pool5, 3 convolutions
            # past conv5_1) with its weights left requiring grad, so backward also computes (and
            # accumulates) a gradient for every weight.
            self.vgg.features.requires_grad_(True)
        if case.channels_last:
            self.vgg.to(memory_format=torch.channels_last)
        with torch.no_grad():  # targets once, in fp32, as StyleTransfer.compute_targets
            content_features = self.vgg(self._layout(content))
            style_features = self.vgg(self._layout(style))
        self.weights = LossWeights.from_options(CONTENT_LAYERS, STYLE_LAYERS, None, CONTENT_WEIGHT, STYLE_WEIGHT, 0.0)
        self.statistic = STYLE_STATISTICS[case.style_loss]()
        self.content_targets = {name: content_features[name].float() for name in CONTENT_LAYERS}
        self.style_targets = {
            name: self.statistic.blend([self.statistic.target(style_features[name])], [1.0]) for name in STYLE_LAYERS
        }
        # The parameter keeps the default layout even with channels_last: L-BFGS flattens it with .view(-1).
        self.image = nn.Parameter(content.clone())
        self.optimizer = make_optimizer(case.optimizer, self.image)
        self.loss: Callable[[], Tensor] = torch.compile(self.eager_loss) if case.compile else self.eager_loss

    def _layout(self, image: Tensor) -> Tensor:
        return image.contiguous(memory_format=torch.channels_last) if self.case.channels_last else image

    def eager_loss(self) -> Tensor:
        """StyleTransfer.forward's total loss: content + 10 x (mean of five style layers)."""
        bf16 = self.case.precision == "bf16-mixed"
        # Lightning's bf16-mixed is autocast around training_step; the losses switch it off themselves.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            features = self.vgg(self._layout(self.image))
        losses = weighted_losses(features, self.image, self.content_targets, self.style_targets, self.weights, self.statistic)
        return losses["loss"]

    def _closure(self) -> Tensor:
        self.optimizer.zero_grad()
        loss = self.loss()
        loss.backward()
        if not self.image.grad.is_contiguous():  # channels_last or autocast can return a strided gradient
            self.image.grad = self.image.grad.contiguous()
        return loss

    def step(self) -> None:
        if self.case.optimizer == "lbfgs":
            self.optimizer.step(self._closure)  # max_iter=1: one evaluation per step, as in the module
        else:
            self._closure()
            self.optimizer.step()
            with torch.no_grad():
                self.image.clamp_(0, 1)  # as StyleTransfer.optimizer_step does after each Adam step

    def seconds_per_step(self, steps: int) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize(self.device)
        return (time.perf_counter() - start) / steps


class StepTimer(pl.Callback):
    """Seconds per step over batches ``first`` .. ``first + steps - 1`` of a ``Trainer.fit`` run.

    The clock runs from ``on_train_batch_start`` of batch ``first`` to ``on_train_batch_start`` of batch
    ``first + steps`` (so the run needs one step more than it times). That window holds everything
    Lightning does per step -- fetching the "batch", training_step, backward, the optimizer step and
    every callback's ``on_train_batch_end`` (progress bar, periodic checkpoints, image logging) and the
    logger's writes -- and nothing it does once per run: Trainer and model setup, the targets in
    ``on_fit_start``, the final checkpoint and result image. Timing with a callback inside one run
    avoids the noise of subtracting two whole runs of different lengths.
    """

    def __init__(self, first: int, steps: int, device: torch.device) -> None:
        self.first, self.steps, self.device = first, steps, device
        self.start: Optional[float] = None
        self.end: Optional[float] = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx in (self.first, self.first + self.steps):
            synchronize(self.device)
            if batch_idx == self.first:
                self.start = time.perf_counter()
            else:
                self.end = time.perf_counter()

    @property
    def seconds_per_step(self) -> float:
        if self.start is None or self.end is None:
            raise RuntimeError("the run ended before the timed window did")
        return (self.end - self.start) / self.steps


def cli_callbacks() -> list[pl.Callback]:
    """The callbacks nst_lightning.run.cli adds, with the CLI's default settings."""
    return [StepCheckpoint(**CHECKPOINT_DEFAULTS), ImageLogger(every_n_steps=IMAGE_EVERY), SaveGeneratedImage()]


def fit_lightning(
    case: Case,
    weights: str,
    device: torch.device,
    total_steps: int,
    progress_bar: bool,
    callbacks: list[pl.Callback],
    profiler: Optional[SimpleProfiler] = None,
) -> StyleTransfer:
    """(b) One ``Trainer.fit`` of StyleTransfer as the CLI sets it up, in a throw-away log directory."""
    with tempfile.TemporaryDirectory(prefix="nst_benchmark_") as logdir:
        trainer = pl.Trainer(
            accelerator=device.type,
            devices=1,
            precision=case.precision,
            max_steps=total_steps,
            log_every_n_steps=LOG_EVERY,
            logger=TensorBoardLogger(logdir, name="nst", version="", default_hp_metric=False),
            callbacks=[*cli_callbacks(), *callbacks],
            default_root_dir=logdir,
            enable_progress_bar=progress_bar,
            # The summary is printed once per run, not per step; off, the benchmark's output stays readable.
            enable_model_summary=False,
            profiler=profiler,
        )
        model = StyleTransfer(
            weights=weights,
            content_layers=list(CONTENT_LAYERS),
            style_layers=list(STYLE_LAYERS),
            content_weight=CONTENT_WEIGHT,
            style_weight=STYLE_WEIGHT,
            optimizer=case.optimizer,
            style_loss=case.style_loss,
            activation_checkpointing=case.activation_checkpointing,
            tile_size=case.tile_size,
            memory_format={None: "auto", True: "channels_last", False: "contiguous"}[case.channels_last],
            lbfgs_history=LBFGS_HISTORY,
        )
        trainer.fit(model, datamodule=StyleTransferData(CONTENT, STYLE, image_size=case.size))
        return model


def lightning_seconds_per_step(
    case: Case, weights: str, device: torch.device, warmup: int, steps: int, progress_bar: bool
) -> float:
    timer = StepTimer(first=warmup, steps=steps, device=device)
    fit_lightning(case, weights, device, warmup + steps + 1, progress_bar, [timer])
    return timer.seconds_per_step


# ---- timing: alternate the ways, take medians ----------------------------------------------------


def auto_channels_last(case: Case, device: torch.device) -> bool:
    """What StyleTransfer's ``memory_format: auto`` picks (StyleTransfer.wants_channels_last)."""
    return device.type == "cpu" or "mixed" in case.precision


def ways_of(base: Case, args: argparse.Namespace, device: torch.device) -> dict[str, tuple[str, Case]]:
    """The ways to time for ``base``: name -> ("plain" or "lightning", case)."""
    ways = {PLAIN: ("plain", base), LIGHTNING: ("lightning", base)}
    if "on" in args.channels_last:
        ways[PLAIN_CL] = ("plain", replace(base, channels_last=True))
        if not auto_channels_last(base, device):  # else "(b) defaults" below is this very case
            ways[LIGHTNING_CL] = ("lightning", replace(base, channels_last=True))
    ways[LIGHTNING_DEFAULT] = ("lightning", replace(base, channels_last=None))
    if "on" in args.compile:
        ways[COMPILED] = ("plain", replace(base, compile=True))
    if args.naive:
        ways[NAIVE] = ("plain", replace(base, naive=True))
    return ways


def time_group(base: Case, args: argparse.Namespace, device: torch.device) -> dict[str, list[float]]:
    """Seconds per step of each way, ``args.repeats`` times, alternated: a, b, a', b', a, b, ...

    Each plain loop is built once and re-timed (its warm-up steps run again before every window, as
    Lightning's do), so that torch.compile compiles once. Lightning runs keep the progress bar on, as
    the CLI does.
    """
    ways = ways_of(base, args, device)
    loops = {}
    for name, (kind, case) in ways.items():
        if kind == "plain":
            start = time.perf_counter()
            loops[name] = PlainLoop(case, args.weights, device)
            loops[name].seconds_per_step(1)  # where torch.compile compiles
            if case.compile:
                print(f"  {name}: first step (setup, compilation) {time.perf_counter() - start:.1f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for repeat in range(args.repeats):
        for name, (kind, case) in ways.items():
            if kind == "plain":
                loops[name].seconds_per_step(args.warmup)
                seconds = loops[name].seconds_per_step(args.steps)
            else:
                seconds = lightning_seconds_per_step(case, args.weights, device, args.warmup, args.steps, True)
            times[name].append(seconds)
            print(f"  repeat {repeat + 1}/{args.repeats}  {name:34s} {seconds:.4f} s/step", flush=True)
    return times


def warm_up(case: Case, args: argparse.Namespace, device: torch.device) -> None:
    """One short untimed run of each way: imports, first allocations, oneDNN kernels, TensorBoard."""
    PlainLoop(case, args.weights, device).seconds_per_step(args.warmup)
    lightning_seconds_per_step(case, args.weights, device, 1, max(args.warmup, 1), progress_bar=False)


def ratio_summary(ways: list[float], reference: list[float]) -> str:
    """Median and range of the ratios of back-to-back runs."""
    ratios = [w / r for w, r in zip(ways, reference)]
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"


def timing_rows(base: Case, pixels: tuple[int, int], times: dict[str, list[float]], device: torch.device) -> list[str]:
    """One row per way: its median, its ratio to (a), and for Lightning its ratio to the plain loop
    with the same layout, i.e. Lightning's own overhead."""
    same_layout = {LIGHTNING: PLAIN, LIGHTNING_CL: PLAIN_CL}
    if auto_channels_last(base, device):
        same_layout[LIGHTNING_DEFAULT] = PLAIN_CL
    else:
        same_layout[LIGHTNING_DEFAULT] = PLAIN
    rows = []
    for name, seconds in times.items():
        ratio = "1 (reference)" if name == PLAIN else ratio_summary(seconds, times[PLAIN])
        reference = same_layout.get(name)
        overhead = ratio_summary(seconds, times[reference]) if reference in times else ""
        rows.append(
            f"| {base.size} ({pixels[1]}x{pixels[0]}) | {optimizer_cell(base)} | {base.precision} | {name} "
            f"| {statistics.median(seconds):.4f} | {ratio} | {overhead} |"
        )
    return rows


TIMING_HEADER = [
    "| size (W x H) | optimizer | precision | way | s/step (median) | vs (a): median (min-max) "
    "| Lightning overhead (vs same-layout plain loop) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]


# ---- peak memory, one fresh process per size -----------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux from VmHWM, which starts afresh at exec: getrusage's
    ru_maxrss survives exec, so a child would report its (larger) parent's peak."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**10  # kB
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def saved_for_backward_mb(loop: PlainLoop) -> float:
    """MB of tensors autograd keeps from one forward pass for the backward pass (weights and the image
    parameter excluded): the activations that make memory grow with the image."""
    excluded = {p.untyped_storage().data_ptr() for p in [*loop.vgg.parameters(), loop.image]}
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:  # in-place ReLUs: conv output and ReLU output share one
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loop.eager_loss()  # eager: the hooks cannot see inside a compiled graph
    return sum(storages.values()) / 2**20


def memory_child(spec: dict) -> dict:
    """Runs in a fresh process (so that the peak is this size's alone) and returns its measurements."""
    case, device = Case(**spec["case"]), torch.device(spec["device"])
    result: dict = {}
    if spec["way"] == "plain":
        loop = PlainLoop(case, spec["weights"], device)
        result["setup_mb"] = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else current_rss_mb()
        for _ in range(spec["steps"]):
            loop.step()
        result["peak_mb"] = peak_rss_mb()
        result["saved_mb"] = saved_for_backward_mb(loop)
    else:
        fit_lightning(case, spec["weights"], device, spec["steps"], progress_bar=False, callbacks=[])
        result["peak_mb"] = peak_rss_mb()
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def measure_memory(case: Case, way: str, weights: str, device: torch.device, steps: int) -> dict:
    spec = {"case": asdict(case), "way": way, "weights": weights, "device": str(device), "steps": steps}
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement of {way} at {case.size} px failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_section(cases: list[Case], pixels: dict[int, tuple[int, int]], args: argparse.Namespace, device: torch.device) -> list[str]:
    unit = "GPU max_memory_allocated" if device.type == "cuda" else "peak RSS"
    setup = "allocated after setup" if device.type == "cuda" else "RSS after setup"
    lines = [
        f"| size (W x H) | Mpx | (a) {setup}, MB | (a) {unit}, MB | (b) {unit}, MB | saved for backward, MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    megapixels, peaks_a, peaks_b, saved = [], [], [], []
    for case in cases:
        plain = measure_memory(case, "plain", args.weights, device, args.memory_steps)
        fitted = measure_memory(case, "lightning", args.weights, device, args.memory_steps)
        height, width = pixels[case.size]
        megapixels.append(height * width / 1e6)
        peaks_a.append(plain["peak_mb"])
        peaks_b.append(fitted["peak_mb"])
        saved.append(plain["saved_mb"])
        lines.append(
            f"| {case.size} ({width}x{height}) | {megapixels[-1]:.4f} | {plain['setup_mb']:.0f} | {plain['peak_mb']:.0f} "
            f"| {fitted['peak_mb']:.0f} | {plain['saved_mb']:.0f} |"
        )
    if len(cases) > 1:
        # The slope is what each extra megapixel costs; the intercept is the process, weights and libraries.
        slopes = [statistics.linear_regression(megapixels, y).slope for y in (peaks_a, peaks_b, saved)]
        lines += [
            "",
            f"Growth with pixel count (least-squares slope): (a) {unit} {slopes[0]:.0f} MB/Mpx, "
            f"(b) {unit} {slopes[1]:.0f} MB/Mpx, tensors saved for backward {slopes[2]:.0f} MB/Mpx "
            f"({case.optimizer}, {case.precision}).",
        ]
    return lines


# ---- where Lightning's time goes -----------------------------------------------------------------

# Files of Lightning's per-step bookkeeping, and of this project's callbacks: none of them calls into
# the VGG19 forward/backward, so their cumulative time is overhead alone.
BOOKKEEPING = (
    "lightning/pytorch/callbacks/",
    "lightning/pytorch/loggers/",
    "lightning/pytorch/trainer/connectors/",
    "lightning/pytorch/core/module.py:log",
    # Not coarse_to_fine.py: a new stage computes its targets through VGG19.
    *(f"nst_lightning/callbacks/{name}.py" for name in ("divergence", "loss_logger", "checkpoint", "image_logger", "progress", "result", "run_lock")),
    "torch/utils/tensorboard/",
    "tqdm/",
)


def short_name(action: str) -> str:
    """A SimpleProfiler action without the checkpoint callback's state key (a dict of its settings)."""
    return re.sub(r"\{.*?\}", "", action)


def simple_profile_lines(simple: SimpleProfiler, steps: int, top: int) -> list[str]:
    durations = simple.recorded_durations
    ms_per_step = {action: 1e3 * math.fsum(d) / steps for action, d in durations.items()}
    batch, epoch = ms_per_step.get("run_training_batch", 0.0), ms_per_step.get("run_training_epoch", 0.0)
    lines = ["| action | calls | mean ms | ms per step |", "| --- | --- | --- | --- |"]
    for action, ms in sorted(ms_per_step.items(), key=lambda item: -item[1])[:top]:
        mean = 1e3 * statistics.fmean(durations[action])
        lines.append(f"| {short_name(action)} | {len(durations[action])} | {mean:.2f} | {ms:.2f} |")
    lines += [
        "",
        f"Per step: {batch:.1f} ms in run_training_batch (training_step, backward, optimizer step), "
        f"{epoch - batch:.1f} ms outside it (hooks, logger writes, progress bar, checkpoints, data fetching).",
    ]
    return lines


def cprofile_lines(stats: dict, steps: int, top: int) -> list[str]:
    """Lightning-side functions by cumulative time, and who calls ``Tensor.item()``."""
    rows = []
    for (filename, line, function), (_, _, _, cumtime, _) in stats.items():
        if any(part in f"{filename}:{function}" for part in BOOKKEEPING) and not function.startswith("<"):
            calls = stats[(filename, line, function)][1]
            short = filename.split("site-packages/")[-1].split(str(Path(__file__).resolve().parents[1]) + "/")[-1]
            rows.append((1e3 * cumtime / steps, calls, f"{short}:{line} {function}"))
    lines = ["| function | calls | ms per step |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {calls} | {ms:.2f} |" for ms, calls, name in sorted(rows, reverse=True)[:top]]
    item = next((v for k, v in stats.items() if k[2] == "<method 'item' of 'torch._C.TensorBase' objects>"), None)
    if item:
        callers = ", ".join(
            f"`{Path(f).name}:{line} {function}` ({counts[0]})" for (f, line, function), counts in item[4].items()
        )
        lines += ["", f"`Tensor.item()` (a host-device sync on a GPU): {item[0] / steps:.1f} calls per step, from {callers}."]
    return lines


def profile_lightning(case: Case, args: argparse.Namespace, device: torch.device) -> list[str]:
    """Two profiled ``Trainer.fit`` runs of ``args.steps`` steps (progress bar on, CLI defaults).

    Lightning's SimpleProfiler times each hook at its boundaries (little overhead of its own); cProfile
    then looks inside the hooks and the logging calls, with an overhead that inflates Python-heavy code,
    so read its numbers as upper bounds and its ranking as the finding.
    """
    steps = args.steps
    title = f"{case.size} px, {case.optimizer}, precision {case.precision}, {steps} steps, progress bar on"
    simple = SimpleProfiler(dirpath=tempfile.gettempdir(), filename="nst_benchmark_simple_profile")
    fit_lightning(case, args.weights, device, steps, progress_bar=True, callbacks=[], profiler=simple)
    profile = cProfile.Profile()
    profile.runcall(fit_lightning, case, args.weights, device, steps, True, [])
    return [
        f"## Lightning's SimpleProfiler ({title})",
        "",
        *simple_profile_lines(simple, steps, args.profile_top),
        "",
        f"## cProfile, Lightning-side functions by cumulative time ({title}; includes cProfile's overhead)",
        "",
        *cprofile_lines(pstats.Stats(profile).stats, steps, args.profile_top),
    ]


# ---- what bf16-mixed does to the result -----------------------------------------------------------


def precision_losses(args: argparse.Namespace, device: torch.device) -> list[str]:
    """Final content and style losses of the same run in fp32 and in bf16-mixed, both measured in fp32
    on the final image, so that the difference is the precision's effect on the optimisation."""
    size, steps = args.sizes[0], args.loss_steps
    lines = [
        f"## Final losses, fp32 vs bf16-mixed ({size} px, Adam, {steps} steps, weights {args.weights}, "
        "losses evaluated in fp32)",
        "",
        "| precision | s/step (whole fit) | content loss | style loss | total |",
        "| --- | --- | --- | --- | --- |",
    ]
    for precision in ("32", "bf16-mixed"):
        start = time.perf_counter()
        model = fit_lightning(Case(size, "adam", precision, channels_last=None), args.weights, device, steps, False, [])
        seconds = (time.perf_counter() - start) / steps
        with torch.no_grad():
            losses = model.float()(model.image.detach().float())
        lines.append(
            f"| {precision} | {seconds:.3f} | {losses['content_loss'].item():.4f} | {losses['style_loss'].item():.4f} "
            f"| {losses['loss'].item():.4f} |"
        )
    return lines


# ---- the report ----------------------------------------------------------------------------------


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", load average at start {:.1f} (1 min)".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    accelerator = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "CPU only"
    return (
        f"{cpu}, {os.cpu_count()} cores (torch uses {torch.get_num_threads()} threads){load}; {accelerator}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, lightning {lightning.__version__}"
    )


def optimizer_cell(case: Case) -> str:
    """The optimizer, and the style loss where it is not the default."""
    return case.optimizer if case.style_loss == "gram" else f"{case.optimizer}, {case.style_loss}"


def build_cases(args: argparse.Namespace) -> list[Case]:
    """The base case (NCHW, eager) of every size x optimizer x precision asked for; ``ways_of`` adds
    the layouts and compilation to each."""
    return [
        Case(
            size, optimizer, precision, style_loss=style_loss,
            activation_checkpointing=args.activation_checkpointing, tile_size=args.tile_size,
        )  # fmt: skip
        for size in args.sizes
        for optimizer in args.optimizer
        for precision in args.precision
        for style_loss in args.style_loss
    ]


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", help="long sides in pixels (default: 128 256 512; 1024 more on a GPU)")
    parser.add_argument("--optimizer", nargs="+", choices=["adam", "lbfgs"], default=["adam"], help="optimizers to time")
    parser.add_argument("--precision", nargs="+", choices=["32", "bf16-mixed"], default=["32"], help="precisions to time")
    parser.add_argument(
        "--activation-checkpointing", action="store_true", help="every way with --model.activation_checkpointing"
    )
    parser.add_argument(
        "--tile-size", type=int, help="Lightning's ways with --model.tile_size N (b/a is then the cost of tiling)"
    )
    parser.add_argument(
        "--style-loss", nargs="+", choices=sorted(STYLE_STATISTICS), default=["gram"], help="style losses to time"
    )
    parser.add_argument(
        "--channels-last", choices=["off", "on"], default="on",
        help="'on' (default) adds the NHWC plain loop (and NHWC Lightning where that is not its default)",
    )  # fmt: skip
    parser.add_argument(
        "--compile", choices=["off", "on"], default="off",
        help="'on' adds the plain loop with its loss under torch.compile (minutes to compile on a small CPU)",
    )  # fmt: skip
    parser.add_argument("--naive", action="store_true", help="add a plain loop over uncut VGG19 with trainable weights")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per run (default 50: one image log and five logger writes)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each way, alternated")
    parser.add_argument("--weights", default="random", help="VGG19 weights: 'random' (default, offline) or a .pth path")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run (auto: cuda if available)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's, one per core); 1 is steadier on a busy machine",
    )  # fmt: skip
    parser.add_argument("--memory-steps", type=int, default=3, help="steps of each peak-memory run")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--profile", action="store_true", help="instead of timing, profile one Trainer.fit at the first size")
    parser.add_argument(
        "--loss-steps", type=int, default=0,
        help="instead of timing, fit this many steps in fp32 and in bf16-mixed at the first size and compare the final losses",
    )  # fmt: skip
    parser.add_argument("--profile-top", type=int, default=20, help="rows of the cProfile table")
    parser.add_argument("--quick", action="store_true", help="under a minute: 128 px, adam, fp32, 8 steps, 2 repeats")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)  # internal: one peak-memory measurement
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.optimizer, args.precision = [128], ["adam"], ["32"]
        args.compile = "off"
        args.steps, args.warmup, args.repeats, args.memory_steps = 8, 1, 2, 2
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--steps and --repeats must be positive, --warmup not negative")
    return args


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def quiet_lightning() -> None:
    """Lightning's per-run info lines and warnings that do not apply to a one-image problem."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    for message in (
        r".*module\(s\) in eval mode.*",  # the frozen VGG19, on purpose
        r".*does not have many workers.*",  # the "batches" are step indices
        r".*your dataloader is not resumable.*",
        r".*smaller than the logging interval.*",  # the short peak-memory runs
        r".*isinstance\(treespec, LeafSpec\).*",  # a deprecation inside Lightning's own code
    ):
        warnings.filterwarnings("ignore", message=message)


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    quiet_lightning()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return
    device = pick_device(args.device)
    args.sizes = args.sizes or ([128, 256, 512, 1024] if device.type == "cuda" else [128, 256, 512])
    groups = build_cases(args)
    pixels = {size: tuple(load_images(size)[0].shape[-2:]) for size in args.sizes}
    report = ["## Machine", "", machine_description(device), "", f"Command: `python {' '.join(sys.argv)}`", ""]
    if args.profile:
        print("\n".join(report + profile_lightning(groups[0], args, device)))
        return
    if args.loss_steps:
        print("\n".join(report + precision_losses(args, device)))
        return

    started = time.perf_counter()
    warm_up(groups[0], args, device)
    rows = []
    for base in groups:
        print(f"{base.size} px, {base.optimizer}, {base.precision}:", flush=True)
        rows += timing_rows(base, pixels[base.size], time_group(base, args, device), device)
    report += [
        f"## Seconds per step ({args.steps} timed steps after {args.warmup} warm-up steps, {args.repeats} repeats, "
        f"weights {args.weights})",
        "",
        *TIMING_HEADER,
        *rows,
    ]
    if not args.no_memory:
        sizes_once = [base for base in groups if base.optimizer == args.optimizer[0] and base.precision == args.precision[0]]
        report += ["", "## Peak memory (each size in a fresh process)", "", *memory_section(sizes_once, pixels, args, device)]
    report += ["", f"Total benchmark time: {time.perf_counter() - started:.0f} s"]
    print("\n" + "\n".join(report))


if __name__ == "__main__":
    main()
