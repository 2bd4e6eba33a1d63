"""The style weight over the run: ``StyleWeightRamp``, which every ``StyleTransfer`` adds.

With ``--model.style_weight_start S`` the style weight starts at ``S`` times ``style_weight`` and moves
linearly to ``style_weight`` over the run's first ``style_weight_ramp`` (a fraction of ``max_steps``),
then stays there: below 1 the photo's structure forms before the painting's full pull, above 1 the
painting's large shapes form first and the content settles under the configured weight at the end.
Without it (``None``) the weight is ``style_weight`` throughout and nothing is changed.

The factor is a function of the step alone (``ramp_factor``), so a resumed run takes the weight the
uninterrupted run would have at that step, and a checkpoint needs no state of its own.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl


def ramp_factor(step: int, max_steps: int, start: float, ramp: float) -> float:
    """The factor of ``style_weight`` at ``step`` (0-based): ``start`` at step 0, 1 from step
    ``round(ramp * max_steps)`` on (at least 1), a straight line between."""
    length = max(round(ramp * max_steps), 1)
    progress = min(max(step / length, 0.0), 1.0)
    return start + (1.0 - start) * progress


class StyleWeightRamp(pl.Callback):
    """Sets the module's style weight before each step (``weigh_style(factor)``, duck-typed) from the step."""

    def __init__(self, start: Optional[float], ramp: float) -> None:
        self.start, self.ramp = start, ramp

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.start is not None:
            pl_module.weigh_style(ramp_factor(trainer.global_step, int(trainer.max_steps), self.start, self.ramp))
