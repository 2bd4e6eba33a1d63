"""Stopping at the first non-finite loss: ``DivergenceGuard``, which every ``StyleTransfer`` adds
(its ``configure_callbacks``), and the error naming the options that cause a divergence.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import torch

from nst_lightning.utilities.errors import NonFiniteLossError, param


class DivergenceGuard(pl.Callback):
    """Stops training at the first non-finite loss, before the optimizer can spread it (Adam's moments,
    L-BFGS's history), and refuses to checkpoint a non-finite image; keeps the last image whose loss
    was finite, which ``SaveGeneratedImage`` then writes as the result.

    Costs one host-device synchronisation per step (reading whether the loss is finite), the only
    one the optimisation has. The image is not checked every step: an update that makes it
    non-finite makes the next loss non-finite.
    """

    def __init__(self) -> None:
        self.last_finite_image: Optional[torch.Tensor] = None
        self.last_finite_step: Optional[int] = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).item():
            raise diverged(f"the loss became {loss.item()}", trainer)
        if self.last_finite_step == trainer.global_step and self.last_finite_image is not None:
            return  # a tiled step backpropagates once per tile: the image is the same
        # Copied into one buffer (no allocation per step; a new one when a stage changes the size).
        image = pl_module.image.detach()
        if self.last_finite_image is None or self.last_finite_image.shape != image.shape:
            self.last_finite_image = image.clone()
        else:
            self.last_finite_image.copy_(image)
        self.last_finite_step = trainer.global_step

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.check_image(trainer, pl_module)  # a NaN image must never replace the last good checkpoint

    @staticmethod
    def check_image(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise ``NonFiniteLossError`` if the image (or its average) holds NaN or inf."""
        if not image_is_finite(pl_module):
            raise diverged("the image became non-finite", trainer)


def image_is_finite(pl_module: pl.LightningModule) -> bool:
    average = getattr(pl_module, "average", None)
    images = [pl_module.image] + ([average.value] if average is not None else [])
    return all(bool(torch.isfinite(image).all().item()) for image in images)


def diverged(what: str, trainer: pl.Trainer) -> NonFiniteLossError:
    """The error for a non-finite loss or image, naming the likely causes and their options."""
    step = trainer.global_step
    optimizer = trainer.optimizers[0]
    precision = str(trainer.precision)
    fixes = f"a lower {param('model.lr')} (it is {optimizer.param_groups[0]['lr']:g})"
    if isinstance(optimizer, torch.optim.LBFGS):
        fixes += f" or {param('model.optimizer')} adam"
    if precision not in ("32", "32-true", "64", "64-true"):
        fixes += f" or {param('trainer.precision')} 32 (it is {precision}, which can overflow)"
    return NonFiniteLossError(
        f"{what} after {step} step{'' if step == 1 else 's'}: the optimisation diverged; start again with {fixes}",
        step,
    )
