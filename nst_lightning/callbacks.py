"""Callbacks: what cuts across the optimisation rather than defining it.

- ``DivergenceGuard`` and ``LossLogger`` come with every ``StyleTransfer`` (its ``configure_callbacks``):
  a NaN is stopped before the optimizer sees it, and the losses are logged.
- ``ImageLogger``, ``SaveGeneratedImage`` and ``StepCheckpoint`` are the CLI's (and ``stylize``'s when
  asked to keep a run): TensorBoard images, the result file, checkpoints.

Stopping: SIGINT (Ctrl-C) and SIGTERM both stop training at the end of the current step, then a
checkpoint and the current image are written (``StepCheckpoint``, ``SaveGeneratedImage``), so a resume
continues exactly where the run stopped. Stopping mid-step instead (Python's default for Ctrl-C)
could save an optimizer state updated halfway. A second signal stops at once, without saving.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.checkpoint_io import SafeCheckpointIO
from nst_lightning.errors import NonFiniteLossError, RunInterrupted, param
from nst_lightning.files import remove_stale_temporaries
from nst_lightning.image_io import save_image

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# StepCheckpoint's settings in a run of the CLI (its --checkpoint.* defaults) and of stylize(log_dir=...).
CHECKPOINT_DEFAULTS = {
    "every_n_train_steps": 100,
    "save_last": True,
    "save_top_k": -1,  # keep each periodic checkpoint; each is ~3 image sizes
    "filename": "step{step:06d}",
    "auto_insert_metric_name": False,
    # A resume writes into the same run: overwrite step files and last.ckpt rather than adding
    # last-v1.ckpt, which `--ckpt_path last` would then not pick.
    "enable_version_counter": False,
    # Ctrl-C and SIGTERM save a checkpoint (never an error: see StepCheckpoint).
    "save_on_exception": True,
}


def is_graceful_stop(exception: BaseException) -> bool:
    """A stop at a step boundary after which the state is consistent and worth saving."""
    if isinstance(exception, RunInterrupted):
        return exception.saved
    # Lightning's own SIGTERM handling (outside the window where StepCheckpoint handles the signal)
    # also stops at a step boundary.
    return isinstance(exception, SIGTERMException)


def _tensorboard(trainer: pl.Trainer) -> Optional[Any]:
    """The SummaryWriter, or None when logging is off or goes elsewhere (e.g. ``fast_dev_run``)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def find_callback(trainer: pl.Trainer, kind: type) -> Optional[Any]:
    return next((callback for callback in trainer.callbacks if isinstance(callback, kind)), None)


def logger_writes_this_step(trainer: pl.Trainer) -> bool:
    """Whether the Trainer writes this step's metrics to the logger: when (step + 1) is a multiple of
    ``log_every_n_steps``, or on the last step. A copy of Lightning's own rule (its
    ``should_update_logs`` is not public); tests/test_cli.py's
    ``test_detailed_scalars_are_logged_on_the_steps_the_logger_writes`` pins that the two agree."""
    every = trainer.log_every_n_steps
    return every > 0 and ((trainer.global_step + 1) % every == 0 or trainer.should_stop)


class LossLogger(pl.Callback):
    """Logs ``train/loss`` every step (the progress bar shows it) and the loss's parts
    (``train/content_loss``, ``train/style_loss``, ``train/style_loss/<layer>``, ``train/tv_loss``) on
    the steps the logger writes: each ``log`` call costs Python time per step, noise next to a CPU
    step but a real share of a millisecond GPU step (measured in docs/performance.md)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        pl_module.log("train/loss", outputs["loss"], prog_bar=True)
        if logger_writes_this_step(trainer):
            pl_module.log_dict({f"train/{name}": value for name, value in outputs.items() if name != "loss"})


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
        datamodule = trainer.datamodule
        writer.add_image("input/content", self.preview(datamodule.content_image), 0)
        styles = datamodule.style_images
        for number, style in enumerate(styles, start=1):  # every style of a blend, each at its own size
            writer.add_image("input/style" if len(styles) == 1 else f"input/style/{number}", self.preview(style), 0)
        if getattr(datamodule, "regions", None) is not None:  # where each styled region is, as the loss sees it
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
            writer.add_image("generated", self.preview(pl_module.result()), trainer.global_step)


class SaveGeneratedImage(pl.Callback):
    """Writes the image into the run's log directory when training ends or is stopped by a signal;
    when the loss became non-finite, writes the last image whose loss was finite instead."""

    def __init__(self, filename: str = "generated.png") -> None:
        """
        Args:
            filename: Name of the result image inside the run's log directory (``trainer.log_dir``);
                the extension picks the format (``.png``, ``.jpg``, ...).
        """
        self.filename = filename
        self.paths: list[Path] = []  # the image(s) written: one per photo
        self.step: Optional[int] = None  # the step of the image written

    @property
    def path(self) -> Optional[Path]:
        """The (first) image written, if any."""
        return self.paths[0] if self.paths else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and trainer.log_dir is not None:
            remove_stale_temporaries(trainer.log_dir)  # left by a run killed while writing the image

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Never write a NaN image as the result (on_exception then writes the last good one).
        DivergenceGuard.check_image(trainer, pl_module)
        self._save(trainer, pl_module.result(), trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if getattr(pl_module, "image", None) is None:
            return  # stopped before there was an image
        graceful = is_graceful_stop(exception)
        guard = find_callback(trainer, DivergenceGuard)
        if graceful and image_is_finite(pl_module):
            self._save(trainer, pl_module.result(), trainer.global_step)
        elif (graceful or isinstance(exception, NonFiniteLossError)) and guard and guard.last_finite_image is not None:
            self._save(trainer, pl_module.result(guard.last_finite_image), guard.last_finite_step)

    def _save(self, trainer: pl.Trainer, image: Any, step: Optional[int]) -> None:
        if trainer.is_global_zero:
            directory = trainer.log_dir or "."
            if image.shape[0] == 1:
                self.paths = [save_image(image, os.path.join(directory, self.filename))]
            else:  # photos optimised together: one file each, generated_0.png, generated_1.png...
                self.paths = [save_image(image[k : k + 1], os.path.join(directory, member_filename(self.filename, k))) for k in range(image.shape[0])]
            self.step = step


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also saves when training ends and when it is stopped by a signal,
    writes atomically and loads with ``weights_only``.

    - End: Lightning (2.6) writes ``last.ckpt`` at the end of an epoch only if a periodic checkpoint
      fell on that very step, so a run whose ``max_steps`` is not a multiple of
      ``every_n_train_steps`` would end with a ``last.ckpt`` from before its final steps.
    - Signals: SIGINT and SIGTERM stop training after the current step; then, if
      ``save_on_exception`` (the CLI's default), a checkpoint is written. Unlike Lightning's
      ``save_on_exception``, errors never save one: after a non-finite loss it would hold a broken
      image, and after a refused resume it would overwrite the run's last good state.
    - Files: the Trainer's default ``TorchCheckpointIO`` is swapped for ``SafeCheckpointIO`` (a
      custom ``CheckpointIO`` plugin is left alone), and temporaries left by a killed run are removed.

    Lightning has no public "save top-k and last now"; ``_save_now`` calls ``ModelCheckpoint``'s own
    protected methods for it. Tests pin what that gives (a ``last.ckpt`` of the final step when
    ``max_steps`` is no multiple of the interval, and on a signal), so an upgrade that changes them fails.
    """

    # Per-run state, set in on_train_start (no __init__ override: the CLI reads ModelCheckpoint's).
    _trainer: Optional[pl.Trainer] = None
    _stop_signal: Optional[int] = None
    _flush_next_step = False
    _previous_handlers: dict[int, Any] = {}  # replaced, never mutated in place

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = SafeCheckpointIO()
        if trainer.is_global_zero and self.dirpath is not None:
            remove_stale_temporaries(self.dirpath)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._trainer, self._stop_signal = trainer, None
        # After Lightning's own SIGTERM handler (registered just before training starts), which
        # only stops runs on SLURM or, elsewhere, at its own pace and with exit code 0.
        if threading.current_thread() is threading.main_thread():
            self._previous_handlers = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}

    def _on_signal(self, signum: int, frame: Any) -> None:
        step = self._trainer.global_step if self._trainer is not None else 0
        if self._stop_signal is not None:  # asked twice: the user wants out now
            self._restore_signal_handlers()
            raise RunInterrupted(signum, step, saved=False)
        self._stop_signal = signum
        rank_zero_info(
            f"\n{signal.Signals(signum).name} received: stopping after step {step + 1}, then saving a "
            "checkpoint and the image (send it again to stop at once, without saving)"
        )

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        # The points logged before a checkpoint reach the event file before it does (``Logger.save``
        # flushes TensorBoard's buffer, which otherwise holds up to 2 minutes of points), and the
        # checkpointed step's own point, which Lightning writes after the callbacks, at the start of
        # the next step: a run killed after a checkpoint and resumed from it has no gap in
        # TensorBoard, unless the kill falls in the instant between the checkpoint and that flush.
        self._flush_loggers(trainer)
        self._flush_next_step = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_start(trainer, pl_module, *args, **kwargs)
        if self._flush_next_step:
            self._flush_loggers(trainer)
            self._flush_next_step = False

    @staticmethod
    def _flush_loggers(trainer: pl.Trainer) -> None:
        for logger in trainer.loggers:
            logger.save()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if self._stop_signal is not None and trainer.global_step < (trainer.max_steps or 0):
            raise RunInterrupted(self._stop_signal, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_signal_handlers()
        self._save_now(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:
            # Only once training has started: before, the module's state is not the run's yet.
            if self.save_on_exception and self._trainer is not None and is_graceful_stop(exception):
                self._save_now(trainer)
        finally:
            self._restore_signal_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_signal_handlers()
        self._trainer = None

    def _save_now(self, trainer: pl.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)


def member_filename(filename: str, k: int) -> str:
    """The result file of the k-th of several photos optimised together: ``generated_0.png``..."""
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem}_{k}.{suffix}" if dot else f"{filename}_{k}"
