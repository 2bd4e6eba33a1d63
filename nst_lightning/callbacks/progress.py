"""``StepProgressBar``: a run's progress as optimisation steps, its loss and the time left.

Lightning's own bars count the batches of an epoch and show the logger's version: "Epoch 0/-2 ...
v_num=ream". Neither means anything here: a run is one epoch of ``max_steps`` steps (one "batch" per
step, ``inputs/data.py``), a resumed one starts part way through, and the run's directory is printed
with its result.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """``step 40/150 |█████     | ETA 00:42, loss 2.10``: the global step out of ``max_steps`` (a resumed
    run starts where it stopped, and its time left counts only the steps done since), the loss of the
    last logged step, and the time left. The CLI adds it unless ``--trainer.enable_progress_bar false``
    or another progress bar is among ``--trainer.callbacks``."""

    BAR_FORMAT = "step {n_fmt}/{total_fmt} |{bar:24}| ETA {remaining}{postfix}"

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        # tqdm's rate (and so the time left) is (n - initial) / elapsed: the steps of this process only.
        bar.initial = bar.n = trainer.global_step
        bar.set_description_str("")
        bar.refresh()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is None or bar.disable or not (step % self.refresh_rate == 0 or step == trainer.max_steps):
            return
        bar.n = step
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Union[int, str, float, dict[str, float]]]:
        # The loss alone (loss_logger.py puts the last logged one there): not the logger's version.
        loss = trainer.progress_bar_metrics.get("train/loss")
        return {} if loss is None else {"loss": float(loss)}


def with_step_progress_bar(trainer: Mapping[str, Any]) -> Optional[list]:
    """The callbacks of the Trainer built from ``trainer`` (its instantiated config) with a
    ``StepProgressBar`` added; ``None`` where the bar is off or another one is among them."""
    callbacks = trainer.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    if trainer.get("enable_progress_bar") is False or any(isinstance(c, ProgressBar) for c in callbacks):
        return None
    return [*callbacks, StepProgressBar()]
