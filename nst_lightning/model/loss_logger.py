"""Logging the loss and its parts: ``LossLogger``, which every ``StyleTransfer`` adds.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


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
    """Logs ``train/loss`` every step (the progress bar shows it) and the loss's parts
    (``train/content_loss``, ``train/style_loss``, ``train/style_loss/<layer>``, ``train/tv_loss``) on
    the steps the logger writes: each ``log`` call costs Python time per step, noise next to a CPU
    step but a real share of a millisecond GPU step (measured in docs/performance.md)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        pl_module.log("train/loss", outputs["loss"], prog_bar=True)
        if logger_writes_this_step(trainer):
            pl_module.log_dict({f"train/{name}": value for name, value in outputs.items() if name != "loss"})
