"""Logging the loss and its parts: ``LossLogger``, which every ``StyleTransfer`` adds.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


def logger_writes_this_step(trainer: pl.Trainer) -> bool:
    """Whether the Trainer writes this step's metrics to the logger: when (step + 1) is a multiple of
    ``log_every_n_steps``, or on the last step. A copy of Lightning's own rule (its
    ``should_update_logs`` is not public); tests/run/test_cli.py's
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
