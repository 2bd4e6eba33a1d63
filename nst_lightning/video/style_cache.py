"""The painting's style targets once per clip, not once per frame: every frame has the same painting,
so its statistics at a size are the same for all of them. ``ClipStyle`` is a callback each frame's
``fit`` is given (before ``TemporalLoss``); it sets the module's ``target_kind`` to ``CachedStyle``,
which measures the frame's content targets and reads the style targets from ``OUT/style/<size>.pt``,
written by the first frame that needed them (whole, then renamed: frames of parallel shots may race,
and write the same tensors).

Not cached where the style targets depend on the frame: ``--model.preserve_colors`` matches the
painting to each photo's colours or luminance first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from nst_lightning.model.targets import Measure, Photos, Targets
from nst_lightning.utilities.files import atomic_write


class CachedStyle:
    """A kind of target: ``Photos``' targets, with the style part read from (or written to) ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def compute(self, measure: Measure, datamodule: Any, long_side: int) -> Targets:
        if measure.control.preserve_colors != "none" or len(getattr(datamodule, "contents", [None])) != 1:
            return Photos().compute(measure, datamodule, long_side)
        path = self.directory / f"{long_side}.pt"
        try:
            style = torch.load(path, map_location=measure.device, weights_only=True)
        except Exception:  # not there yet, or unreadable: measured, and written for the next frames
            targets = Photos().compute(measure, datamodule, long_side)
            self._save(path, targets.images[0][1])
            return targets
        content = datamodule.images(long_side)[0].to(measure.device, torch.float32)
        with torch.no_grad(), torch.autocast(device_type=measure.device.type, enabled=False):
            content_targets = measure(measure.control.vgg_input(content), measure.weights.content_layers, [])[0]
        return Targets([(content_targets, style)], measure.colors(content))

    @staticmethod
    def _save(path: Path, style: dict[str, Any]) -> None:
        # Through a temporary file of a name no other process has (parallel shots' frames may write at
        # once), never from torch's RNG: Ray's workers are seeded alike, so two drew the same name and
        # one renamed the other's file away (FileNotFoundError); and a draw moved the run's own noise.
        atomic_write(path, lambda handle: torch.save(style, handle))


class ClipStyle(pl.Callback):
    def __init__(self, cache: str) -> None:
        """The painting's style targets computed once for a clip.

        Args:
            cache: The folder the clip's style targets are kept in, one file per size.
        """
        self.cache = Path(cache)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.target_kind = CachedStyle(self.cache)
