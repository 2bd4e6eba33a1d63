"""Stopping at the first non-finite loss: ``DivergenceGuard``, which every ``StyleTransfer`` adds
(its ``configure_callbacks``), and the error naming the options that cause a divergence.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import torch

from nst_lightning.callbacks._sync import sync_interval
from nst_lightning.utilities.errors import NonFiniteLossError, param


class DivergenceGuard(pl.Callback):
    """Stops training at the first non-finite loss, before the optimizer can spread it further (Adam's
    moments, L-BFGS's history), and refuses to checkpoint a non-finite image; keeps the last image
    whose loss was finite, which ``SaveGeneratedImage`` then writes as the result. The image is not
    checked every step: an update that makes it non-finite makes the next loss non-finite.

    Reading whether the loss is finite is a host-device synchronisation. With ``sync_every`` 1 (the
    default on a CPU) it is read every step and training stops at once. With N > 1 (the default on a
    GPU: 50) the check stays on the device: each step, without a host read, the image is copied into
    the last-finite buffer only while every loss so far was finite (``torch.where``), with the step
    and, at the first non-finite loss, its step and value; these are read every N steps, before each
    checkpoint and TensorBoard preview (``check_losses``), at each stage's first step and at the end,
    and raise the same error naming the step the loss first became non-finite. The result after a
    divergence is still the exact last finite image; training runs on for fewer than N steps of NaN
    before it stops.
    """

    def __init__(self, sync_every: Optional[int] = None) -> None:
        self.sync_every = sync_every  # None: 1 on a CPU, 50 on a GPU (``options.sync_interval``)
        self.every = 1
        self._last_finite_image: Optional[torch.Tensor] = None
        self._last_finite_step: Optional[int] = None
        self._seen_step: Optional[int] = None  # the step whose image the buffer was last offered
        self._on_device: Optional[dict[str, torch.Tensor]] = None  # with every > 1: the flags, on the device
        self._unread = False  # whether steps were noted on the device since the last read
        self._first_bad: Optional[tuple[int, float]] = None  # the step and value of the first non-finite loss read

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.every = sync_interval(self.sync_every, pl_module.device)

    @property
    def last_finite_image(self) -> Optional[torch.Tensor]:
        """The last image whose loss was finite (None before any was)."""
        self._fetch()
        return self._last_finite_image

    @property
    def last_finite_step(self) -> Optional[int]:
        """The step of ``last_finite_image``."""
        self._fetch()
        return self._last_finite_step

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self.every > 1:
            return self._note_on_device(trainer, pl_module.image.detach(), loss.detach())
        if not torch.isfinite(loss).item():
            raise diverged(f"the loss became {loss.item()}", trainer)
        if self._last_finite_step == trainer.global_step and self._last_finite_image is not None:
            return  # a tiled step backpropagates once per tile: the image is the same
        # Copied into one buffer (no allocation per step; a new one when a stage changes the size).
        image = pl_module.image.detach()
        if self._last_finite_image is None or self._last_finite_image.shape != image.shape:
            self._last_finite_image = image.clone()
        else:
            self._last_finite_image.copy_(image)
        self._last_finite_step = trainer.global_step

    @torch.no_grad()
    def _note_on_device(self, trainer: pl.Trainer, image: torch.Tensor, loss: torch.Tensor) -> None:
        step = trainer.global_step
        if self._last_finite_image is None or self._last_finite_image.shape != image.shape:
            # The first step, or a new stage's: read at once (the old buffer cannot hold this size),
            # so that the buffer starts as an image whose loss is known to be finite.
            self.check(trainer)
            if not torch.isfinite(loss).item():
                raise diverged(f"the loss became {loss.item()}", trainer)
            self._last_finite_image, self._last_finite_step, self._seen_step = image.clone(), step, step
            self._on_device = None  # flags start afresh from this step
            return
        state = self._on_device
        if state is None:
            state = self._on_device = {
                "ok": torch.ones((), dtype=torch.bool, device=image.device),
                "last_step": torch.full((), self._last_finite_step, device=image.device),
                "bad_step": torch.full((), -1, device=image.device),
                "bad_loss": torch.zeros((), device=image.device),
            }
        self._unread = True
        finite = torch.isfinite(loss)
        first_bad = state["ok"] & ~finite
        state["bad_step"].masked_fill_(first_bad, step)
        state["bad_loss"] = torch.where(first_bad, loss.float(), state["bad_loss"])
        state["ok"].logical_and_(finite)
        if self._seen_step != step:  # a tiled step backpropagates once per tile: the image is the same
            self._last_finite_image.copy_(torch.where(state["ok"], image, self._last_finite_image))
            state["last_step"].masked_fill_(state["ok"], step)
            self._seen_step = step

    def _fetch(self) -> None:
        """Read the flags the device holds, if steps were noted since the last read (one host read)."""
        state = self._on_device
        if state is None or not self._unread:
            return
        self._unread = False
        ok, last_step, bad_step, bad_loss = torch.stack([state[key].double() for key in ("ok", "last_step", "bad_step", "bad_loss")]).tolist()
        self._last_finite_step = int(last_step)
        if not ok and self._first_bad is None:
            self._first_bad = (int(bad_step), bad_loss)

    def check(self, trainer: pl.Trainer) -> None:
        """Raise ``NonFiniteLossError`` if a loss noted on the device was non-finite."""
        self._fetch()
        if self._first_bad is not None:
            step, value = self._first_bad
            raise diverged(f"the loss became {value}", trainer, step=step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.every > 1 and trainer.global_step % self.every == 0:
            self.check(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.check_image(trainer, pl_module)  # a NaN image must never replace the last good checkpoint

    @staticmethod
    def check_image(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise ``NonFiniteLossError`` if a loss not yet read was non-finite (``check_losses``), or if
        the image (or its average) holds NaN or inf."""
        check_losses(trainer)
        if not image_is_finite(pl_module):
            raise diverged("the image became non-finite", trainer)


def check_losses(trainer: pl.Trainer) -> None:
    """Raise ``NonFiniteLossError`` if a ``DivergenceGuard`` of ``trainer`` noted a non-finite loss on
    the device that was not read yet: before the image is read for anything else (a checkpoint, a
    preview), which then costs no extra wait."""
    for callback in trainer.callbacks:
        if isinstance(callback, DivergenceGuard):
            callback.check(trainer)


def image_is_finite(pl_module: pl.LightningModule) -> bool:
    average = getattr(pl_module, "average", None)
    images = [pl_module.image] + ([average.value] if average is not None else [])
    return all(bool(torch.isfinite(image).all().item()) for image in images)


def diverged(what: str, trainer: pl.Trainer, step: Optional[int] = None) -> NonFiniteLossError:
    """The error for a non-finite loss or image at ``step`` (default: the trainer's), naming the likely
    causes and their options."""
    step = trainer.global_step if step is None else step
    optimizer = trainer.optimizers[0]
    precision = str(trainer.precision)
    # The option's value, not the scheduled step size of the moment (``initial_lr``: a scheduler's base).
    group = optimizer.param_groups[0]
    fixes = f"a lower {param('model.lr')} (it is {group.get('initial_lr', group['lr']):g})"
    if isinstance(optimizer, torch.optim.LBFGS):
        fixes += f" or {param('model.optimizer')} adam"
    if precision not in ("32", "32-true", "64", "64-true"):
        fixes += f" or {param('trainer.precision')} 32 (it is {precision}, which can overflow)"
    return NonFiniteLossError(
        f"{what} after {step} step{'' if step == 1 else 's'}: the optimisation diverged; start again with {fixes}",
        step,
    )
