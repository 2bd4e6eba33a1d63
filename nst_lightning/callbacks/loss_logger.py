"""Logging the loss and its parts: ``LossLogger``, which every ``StyleTransfer`` adds.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl

from nst_lightning.callbacks._sync import sync_interval


def logger_writes_this_step(trainer: pl.Trainer) -> bool:
    """In ``on_train_batch_end``: whether the Trainer writes this step's metrics to the logger, i.e.
    whether the number of steps done, this one included, is a multiple of ``log_every_n_steps`` (or
    training stops). A copy of Lightning's own rule (its ``should_update_logs``, not public, counts
    ``_batches_that_stepped + 1``, which is ``global_step`` once this step's optimizer step is done);
    tests/run/test_cli.py's ``test_detailed_scalars_are_logged_on_the_steps_the_logger_writes`` pins
    that the steps agree, tests/model/test_host_sync.py that the values written are that step's."""
    every = trainer.log_every_n_steps
    return every > 0 and (trainer.global_step % every == 0 or trainer.should_stop)


class LossLogger(pl.Callback):
    """Logs ``train/loss`` (the progress bar shows it) and the loss's parts (``train/content_loss``,
    ``train/style_loss``, ``train/style_loss/<layer>``, ``train/tv_loss``) on the steps the logger
    writes: each ``log`` call costs Python time per step, noise next to a CPU step but a real share of
    a millisecond GPU step (measured in docs/lab/performance.md).

    With ``sync_every`` 1 (the default on a CPU) ``train/loss`` is logged every step, and the progress
    bar reads it every step. Lightning's bar reads every metric logged with ``prog_bar`` at every step
    (a host-device synchronisation on a GPU), so with N > 1 (the default on a GPU: 50) ``train/loss``
    goes to the logger on the steps it writes, as the parts do, and to the bar as a number read every
    N steps and at the end, put into ``trainer.progress_bar_metrics`` (the dict the bar shows; pinned
    by tests/model/test_host_sync.py)."""

    def __init__(self, sync_every: Optional[int] = None) -> None:
        self.sync_every = sync_every  # None: 1 on a CPU, 50 on a GPU (``options.sync_interval``)
        self.every = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.every = sync_interval(self.sync_every, pl_module.device)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        writes = logger_writes_this_step(trainer)
        if self.every == 1:
            pl_module.log("train/loss", outputs["loss"], prog_bar=True)
        else:
            if writes:
                pl_module.log("train/loss", outputs["loss"])
            if trainer.global_step % self.every == 0 or trainer.global_step == trainer.max_steps:
                trainer.progress_bar_metrics["train/loss"] = outputs["loss"].item()
        if writes:
            pl_module.log_dict({f"train/{name}": value for name, value in outputs.items() if name != "loss"})
