"""Checkpoints: ``StepCheckpoint`` (``--checkpoint.*``), Lightning's ``ModelCheckpoint`` that also
saves at the end and on a signal, atomically.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.callbacks._checkpoint_io import SafeCheckpointIO
from nst_lightning.utilities.errors import RunInterrupted
from nst_lightning.utilities.files import remove_stale_temporaries
from nst_lightning.utilities.signals import StepBoundaryStop

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
    # Ctrl-C, SIGTERM and SIGHUP save a checkpoint (never an error: see StepCheckpoint).
    "save_on_exception": True,
}


def is_graceful_stop(exception: BaseException) -> bool:
    """A stop at a step boundary after which the state is consistent and worth saving."""
    if isinstance(exception, RunInterrupted):
        return exception.saved
    # Lightning's own SIGTERM handling (outside the window where StepCheckpoint handles the signal)
    # also stops at a step boundary.
    return isinstance(exception, SIGTERMException)


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also saves when training ends and when it is stopped by a signal,
    writes atomically and loads with ``weights_only``.

    - End: Lightning (2.6) writes ``last.ckpt`` at the end of an epoch only if a periodic checkpoint
      fell on that very step, so a run whose ``max_steps`` is not a multiple of
      ``every_n_train_steps`` would end with a ``last.ckpt`` from before its final steps.
    - Signals: SIGINT, SIGTERM and SIGHUP stop training after the current step; then, if
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
    _stop: Optional[StepBoundaryStop] = None  # SIGINT, SIGTERM, SIGHUP in training (utilities/signals.py)
    _flush_next_step = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = SafeCheckpointIO()
        if trainer.is_global_zero and self.dirpath is not None:
            remove_stale_temporaries(self.dirpath)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._trainer = trainer
        # After Lightning's own SIGTERM handler (registered just before training starts), which
        # only stops runs on SLURM or, elsewhere, at its own pace and with exit code 0.
        self._stop = StepBoundaryStop(lambda: self._trainer.global_step if self._trainer is not None else 0, rank_zero_info)
        self._stop.install()

    def _restore_signal_handlers(self) -> None:
        if self._stop is not None:
            self._stop.restore()

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
        if self._stop is not None and self._stop.requested is not None and trainer.global_step < (trainer.max_steps or 0):
            raise RunInterrupted(self._stop.requested, trainer.global_step)

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
