"""Callbacks that show the image as it forms, write the result and keep the run safe to stop.

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
from jsonargparse.typing import PositiveInt
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.checkpoint_io import SafeCheckpointIO
from nst_lightning.errors import NonFiniteLossError, RunInterrupted
from nst_lightning.files import remove_stale_temporaries
from nst_lightning.image_io import save_image

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    """Writes the image into the run's log directory when training ends or is stopped by a signal;
    when the loss became non-finite, writes the last image whose loss was finite instead."""

    def __init__(self, filename: str = "generated.png") -> None:
        """
        Args:
            filename: Name of the result image inside the run's log directory (``trainer.log_dir``);
                the extension picks the format (``.png``, ``.jpg``, ...).
        """
        self.filename = filename
        self.path: Optional[Path] = None
        self.step: Optional[int] = None  # the step of the image written

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and trainer.log_dir is not None:
            remove_stale_temporaries(trainer.log_dir)  # left by a run killed while writing the image

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.check_finite_image()  # never write a NaN image as the result (on_exception then writes the last good one)
        self._save(trainer, pl_module.result(), trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if getattr(pl_module, "image", None) is None:
            return  # stopped before there was an image
        graceful = is_graceful_stop(exception)
        if graceful and pl_module.image_is_finite():
            self._save(trainer, pl_module.result(), trainer.global_step)
        elif (graceful or isinstance(exception, NonFiniteLossError)) and pl_module.last_finite_image is not None:
            self._save(trainer, pl_module.result(pl_module.last_finite_image), pl_module.last_finite_step)

    def _save(self, trainer: pl.Trainer, image: Any, step: Optional[int]) -> None:
        if trainer.is_global_zero:
            self.path = save_image(image, os.path.join(trainer.log_dir or ".", self.filename))
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
    """

    # Per-run state, set in on_train_start (no __init__ override: the CLI reads ModelCheckpoint's).
    _trainer: Optional[pl.Trainer] = None
    _stop_signal: Optional[int] = None
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
