"""TensorBoard images: ``ImageLogger`` (``--image_logger.*``), the inputs once and previews of the
image as it is optimised.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.loggers import TensorBoardLogger

from nst_lightning.callbacks.divergence import check_losses
from nst_lightning.inputs.data import datamodule_of


def _tensorboard(trainer: pl.Trainer) -> Optional[Any]:
    """The SummaryWriter, or None when logging is off or goes elsewhere (e.g. ``fast_dev_run``)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class ImageLogger(pl.Callback):
    """Logs the content and style images once, and the generated image every ``every_n_steps``, each
    as a preview no larger than ``max_side`` (the full-size result is ``generated.png``)."""

    def __init__(self, every_n_steps: PositiveInt = 50, max_side: PositiveInt = 1024) -> None:
        """
        Args:
            every_n_steps: Log the generated image to TensorBoard every this many optimisation steps
                (and at the start and end). Each image is a PNG in the event file, so not every step.
            max_side: Long side, in pixels, above which logged images are scaled down (antialiased):
                a large print would otherwise add a PNG of tens of MB to the event file at every log.
        """
        self.every_n_steps = int(every_n_steps)
        self.max_side = int(max_side)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if writer is None or trainer.global_step > 0:  # a resumed run logged these already
            return
        datamodule = datamodule_of(trainer)
        writer.add_image("input/content", self.preview(datamodule.content_image), 0)
        styles = datamodule.style_images
        for number, style in enumerate(styles, start=1):  # every style of a blend, each at its own size
            writer.add_image("input/style" if len(styles) == 1 else f"input/style/{number}", self.preview(style), 0)
        if datamodule.regions is not None:  # where each styled region is, as the loss sees it
            for number, region in enumerate(datamodule.region_inputs(datamodule.image_size), start=1):
                mask = region["mask"] if region["mask"] is not None else torch.ones_like(datamodule.content_image[:, :1])
                writer.add_image(f"input/region/{number}", self.preview(mask.expand(-1, 3, -1, -1)), 0)
        self._log_generated(trainer, pl_module)

    def preview(self, image: torch.Tensor) -> torch.Tensor:
        """``[1, 3, H, W]`` as ``[3, h, w]`` with its long side at most ``max_side``; K images side by side."""
        if image.shape[0] > 1:
            image = torch.cat(list(image.unbind(0)), dim=-1)[None]
        scale = self.max_side / max(image.shape[-2:])
        if scale < 1:
            size = [max(1, round(side * scale)) for side in image.shape[-2:]]
            image = torch.nn.functional.interpolate(image.float(), size=size, mode="bilinear", antialias=True).clamp(0, 1)
        return image[0]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log_generated(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            self._log_generated(trainer, pl_module)

    def _log_generated(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if writer is not None:
            check_losses(trainer)  # with sync_every > 1, a diverged image is not shown
            writer.add_image("generated", self.preview(pl_module.result()), trainer.global_step)
