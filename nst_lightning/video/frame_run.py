"""One frame of a clip: what it starts from, what holds it to the previous frame, and its ``fit``.

The first frame of a shot is a still run. Frame ``n`` after it (Ruder et al. 2016, Sec. 3) starts from
frame ``n - 1``'s saved result warped onto frame ``n`` by the backward flow (``n -> n - 1``), and the
temporal loss holds it there wherever the consistency mask trusts the flow. Where it does not
(disoccluded pixels, motion boundaries) the start is the warped image all the same, as Ruder et al.
start, or with ``--video.fill content`` the photo's own pixels: measured, the warped start flickers
less and keeps the style as well (``docs/guide/video.md``).

Everything a frame needs is computed from its inputs and the previous frame's *saved* result, and
written before its ``fit`` starts (``init.png``, ``previous.pt``), so an interrupted frame resumes
against exactly what it started with, and a resumed clip gives the frames an uninterrupted one does.
"""

from __future__ import annotations

import gc
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from nst_lightning.run.capture import output_to
from nst_lightning.utilities.files import atomic_write
from nst_lightning.video.flow import FlowCache, consistency_mask, warp
from nst_lightning.video.layout import ClipDirectory
from nst_lightning.video.temporal import save_previous

TEMPORAL_CALLBACK = "nst_lightning.video.temporal.TemporalLoss"
STYLE_CALLBACK = "nst_lightning.video.style_cache.ClipStyle"
ERROR_PREFIX = "nst_lightning: error: "
STOPPED_PREFIX = "nst_lightning: stopped"
LOSSES = ("loss", "content_loss", "style_loss", "temporal_loss")  # what frame.json keeps of each frame's run


@dataclass(frozen=True)
class FrameOutcome:
    code: int  # cli_main's exit code: 0 done, 2 a user error, 128 + N stopped by signal N
    line: str  # the run's one-line error or stop message ("" when done)
    steps: int = 0  # the Trainer's global step at the end
    losses: dict[str, float] = field(default_factory=dict)  # the last logged train/ losses, by name
    seconds: float = 0.0


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_png(path: Path, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def prepare(clip: ClipDirectory, n: int, flows: FlowCache, earlier: Sequence[int] = (1,), shot_first: int = 1, fill: str = "warped") -> float:
    """Frame ``n``'s start image and temporal targets, from the results of the frames ``earlier``
    before it (``--video.temporal_frames``, 1 = the previous one) within its shot; the fraction of its
    pixels the flow from the previous frame is trusted at.

    Long-term consistency (Ruder et al. 2016, Sec. 3.2): frame ``n - j``'s result warped by the flow
    ``n -> n - j``, weighted by ``max(c_j - sum of the nearer c_k, 0)``, so each pixel is held to the
    nearest earlier frame it is visible in, and not twice."""
    content = read_rgb(clip.input(n))
    warped_all, weights_all, covered = [], [], None
    for j in sorted(j for j in set(earlier) if n - j >= shot_first):
        before = read_rgb(clip.input(n - j))
        backward = flows.pair(n, n - j, content, before)
        mask = consistency_mask(backward, flows.pair(n - j, n, before, content))
        warped = warp(read_rgb(clip.frame(n - j)).astype(np.float32) / 255.0, backward)
        weights = mask if covered is None else np.maximum(mask - covered, 0.0)
        covered = mask if covered is None else covered + mask
        warped_all.append(warped)
        weights_all.append(weights)
    trusted = weights_all[0][..., None]
    # The start: the warped previous result, also where the flow is not trusted (``fill`` warped, as
    # Ruder et al. start: 0.12-0.15x the flicker of independent runs on Sintel against 0.17-0.21x for
    # the photo's own pixels there, ``fill`` content; docs/guide/video.md).
    start = warped_all[0] if fill == "warped" else trusted * warped_all[0] + (1.0 - trusted) * (content.astype(np.float32) / 255.0)
    write_png(clip.run(n) / "init.png", np.clip(np.rint(start * 255.0), 0, 255).astype(np.uint8))
    as_tensor = lambda arrays: torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).permute(0, 3, 1, 2)  # noqa: E731
    save_previous(clip.run(n) / "previous.pt", as_tensor(warped_all), as_tensor([w[..., None] for w in weights_all]))
    return float(weights_all[0].mean())


def frame_arguments(
    clip: ClipDirectory, n: int, style: str, fit_args: Sequence[str], steps: Optional[int], temporal_weight: Optional[float]
) -> list[str]:
    """Frame ``n``'s ``fit`` command line: the clip's fit options, then what is this frame's own.
    ``temporal_weight`` None: a shot's first frame, a still run; else it starts from ``init.png`` with
    the temporal loss, in one stage (the warped start is already at full size: coarse-to-fine would
    throw it away)."""
    run = clip.run(n)
    args = ["fit", "--trainer.enable_progress_bar", "false", *fit_args, "--data.content", str(clip.input(n)), "--data.style", style]
    args += ["--trainer.max_steps", str(steps)] if steps is not None else []
    args += ["--trainer.logger.init_args.save_dir", str(run.parent), "--trainer.logger.init_args.name", ""]
    args += ["--trainer.logger.init_args.version", run.name]
    # The painting's style targets once for the clip (before TemporalLoss, which wraps its kind).
    args += [f"--trainer.callbacks+={STYLE_CALLBACK}", "--trainer.callbacks.cache", str(clip.root / "style")]
    if temporal_weight is not None:
        args += ["--model.init", "image", "--model.init_image", str(run / "init.png"), "--model.stage_steps", "null"]
        args += [f"--trainer.callbacks+={TEMPORAL_CALLBACK}", "--trainer.callbacks.previous", str(run / "previous.pt")]
        args += ["--trainer.callbacks.weight", repr(float(temporal_weight))]
    if (run / "checkpoints" / "last.ckpt").is_file():
        args += ["--ckpt_path", "last"]
    return args


def run_frame(clip: ClipDirectory, n: int, args: list[str]) -> FrameOutcome:
    """Frame ``n``'s ``fit``, in this process through ``cli_main`` (every check, lock, checkpoint and
    one-line error of a ``fit``), its output into ``runs/frame_NNNNNN/frame.log``."""
    from nst_lightning.run.entry import cli_main

    clip.run(n).mkdir(parents=True, exist_ok=True)
    log, started, cli, code = io.StringIO(), time.monotonic(), None, 0
    with output_to(clip.run(n) / "frame.log", log):
        try:
            cli = cli_main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    lines = log.getvalue().splitlines()
    prefix = ERROR_PREFIX if code == 2 else STOPPED_PREFIX
    found = [line[line.index(prefix) :] for line in lines if prefix in line]
    metrics = cli.trainer.callback_metrics if cli is not None else {}
    losses = {name: round(float(metrics[f"train/{name}"]), 6) for name in LOSSES if f"train/{name}" in metrics}
    steps = int(cli.trainer.global_step) if cli is not None else 0
    # The frame's Trainer, model and VGG19 (55 MB at 32 px) are held in reference cycles, which only
    # Python's rare full collection frees: without this, a clip's memory grew by them frame after frame
    # (2.7 GB after 100 frames at 32 px, docs/guide/video.md), for about 0.3 s a frame here.
    del cli, metrics
    gc.collect()
    return FrameOutcome(code, found[-1] if found and code else "", steps, losses, time.monotonic() - started)


def record(outcome: FrameOutcome, n: int, trusted: Optional[float]) -> dict[str, Any]:
    """``frame.json``: what the frame's run ended with."""
    return {"frame": n, "status": "done", "pid": os.getpid(), "steps": outcome.steps, "seconds": round(outcome.seconds, 2),
            "trusted_fraction": trusted, **outcome.losses}
