"""Callbacks that show the image as it forms and write the result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from nst_lightning.image_io import save_image


def _tensorboard(trainer: pl.Trainer) -> Optional[Any]:
    """The SummaryWriter, or None when logging is off or goes elsewhere (e.g. ``fast_dev_run``)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class ImageLogger(pl.Callback):
    """Logs the content and style images once, and the generated image every ``every_n_steps``."""

    def __init__(self, every_n_steps: PositiveInt = 50) -> None:
        """
        Args:
            every_n_steps: Log the generated image to TensorBoard every this many optimisation steps
                (and at the start and end). Each image is a PNG in the event file, so not every step.
        """
        self.every_n_steps = int(every_n_steps)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if writer is None or trainer.global_step > 0:  # a resumed run logged these already
            return
        datamodule = trainer.datamodule
        writer.add_image("input/content", datamodule.content_image[0], 0)
        writer.add_image("input/style", datamodule.style_image[0], 0)
        self._log_generated(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log_generated(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            self._log_generated(trainer, pl_module)

    @staticmethod
    def _log_generated(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if writer is not None:
            writer.add_image("generated", pl_module.result()[0], trainer.global_step)


class SaveGeneratedImage(pl.Callback):
    """Writes the final image into the run's log directory when training ends."""

    def __init__(self, filename: str = "generated.png") -> None:
        """
        Args:
            filename: Name of the result image inside the run's log directory (``trainer.log_dir``);
                the extension picks the format (``.png``, ``.jpg``, ...).
        """
        self.filename = filename
        self.path: Optional[Path] = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.path = save_image(pl_module.result(), os.path.join(trainer.log_dir or ".", self.filename))


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also saves when training ends.

    Lightning (2.6) writes ``last.ckpt`` at the end of an epoch only if a periodic checkpoint fell on
    that very step, so a run whose ``max_steps`` is not a multiple of ``every_n_train_steps`` would
    end with a ``last.ckpt`` from before its final steps. A resume must start from the final state.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
