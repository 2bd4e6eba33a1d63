"""Learning-rate schedules for Adam: ``lr_schedule`` (``constant``, ``cosine``, ``linear``), ``lr_floor``,
``warmup_steps`` and ``lr_decay_fraction``, as a ``LambdaLR`` that Lightning steps after every optimizer step (``interval:
step``; the tiled step, under manual optimization, steps it itself: ``scale/tiling.tiled_step``).

Step ``k`` (0-based, the step about to be taken) uses ``lr * factor(k)``:

- warm-up, ``k < W`` (``W = warmup_steps``): ``(k + 1) / (W + 1)``, a line from ~0 to ``lr``, so the
  first steps, whose Adam moments hold one or two gradients, stay small;
- then ``constant``: 1; ``cosine``: ``floor + (1 - floor) (1 + cos(pi p)) / 2``; ``linear``:
  ``floor + (1 - floor) (1 - p)``, with ``p = (k - W) / (max_steps - W)``: from ``lr`` down to
  ``lr * lr_floor`` at the run's end, ``max_steps`` (the last step takes a size just above it);
- with ``lr_decay_fraction = f < 1`` the decay takes only the run's last ``D = round(f max_steps)``
  steps (at least 1, never into the warm-up): ``p = (k - S) / (max_steps - S)`` from
  ``S = max(W, max_steps - D)``, and the step stays at ``lr`` before. Warm-up, stable, decay: the
  constant step converges fastest, and a short decay at the end settles the iterates it leaves
  jittering, where a decay over the whole run spends half of it at small steps (docs/lab/quality.md,
  "the new configs/quick.yaml"). A fraction, not a number of steps, so that it fits any run: a video's
  later frames run a fifth of the first's steps, and a resume that extends the run moves the decay
  to the new end.

The schedule's length is the run's ``max_steps``, also after a resume that changes it (``RunSchedule``).
With coarse-to-fine stages the schedule runs over the whole run's global step: Adam's optimizer
persists across stages (its state is resized in place), and so does its scheduler.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Union

import torch
from torch.optim.lr_scheduler import LambdaLR

from nst_lightning.utilities.errors import UserError, new_run_hint, param

# What ``configure_optimizers`` returns: the optimizer alone, or Lightning's dict with its scheduler.
Configured = Union[torch.optim.Optimizer, dict[str, Any]]


class StepSizeFactor:
    """The factor of ``lr`` at step ``k``: a callable object, not a lambda, so that ``LambdaLR`` saves its
    fields (plain numbers and a string: checkpoints still load with ``weights_only``)."""

    def __init__(self, schedule: str, floor: float, warmup_steps: int, total_steps: int, decay_fraction: float = 1.0) -> None:
        self.schedule, self.floor, self.warmup_steps, self.total_steps = schedule, float(floor), int(warmup_steps), int(total_steps)
        # A checkpoint made before lr_decay_fraction existed has no such field: LambdaLR restores the
        # saved fields only, so it keeps this run's value (1.0, the whole run, as then).
        self.decay_fraction = float(decay_fraction)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.schedule == "constant":
            return 1.0
        start = self.warmup_steps
        if self.decay_fraction < 1.0:
            start = max(start, self.total_steps - max(round(self.decay_fraction * self.total_steps), 1))
        length = self.total_steps - start
        progress = min(max((step - start) / max(length, 1), 0.0), 1.0)
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.schedule == "cosine" else 1.0 - progress
        return self.floor + (1.0 - self.floor) * shape


class RunSchedule(LambdaLR):
    """``LambdaLR`` whose length stays this run's ``max_steps`` when a checkpoint is loaded into it:
    ``LambdaLR.load_state_dict`` restores the factor's fields, and a resume may extend the run (the
    rest of the schedule is then stretched to the new end, rather than sitting at the floor)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        totals = [factor.total_steps for factor in self.lr_lambdas]
        super().load_state_dict(state_dict)
        for factor, total in zip(self.lr_lambdas, totals):
            factor.total_steps = total


def with_schedule(
    optimizer: torch.optim.Optimizer, schedule: str, floor: float, warmup_steps: int, max_steps: int, decay_fraction: float = 1.0
) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` dict: ``optimizer`` and its scheduler, stepped every step."""
    scheduler = RunSchedule(optimizer, StepSizeFactor(schedule, floor, warmup_steps, max_steps, decay_fraction))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def check_schedule_state(checkpoint: dict[str, Any], scheduled: bool, name: str = "the checkpoint") -> None:
    """Refuse to resume with a schedule from a checkpoint made without one (e.g. before schedules
    existed): it holds no scheduler state, so the schedule would restart at step 0 mid-run."""
    if scheduled and not checkpoint.get("lr_schedulers"):
        raise UserError(
            f"{name} was made without a learning-rate schedule, so it holds no position in one to continue from; "
            f"resume with {param('model.lr_schedule')} constant and {param('model.warmup_steps')} 0, {new_run_hint(name)}"
        )



def schedule_state(optimizer: torch.optim.Optimizer, optim: Any, max_steps: Optional[int], step: int) -> dict[str, Any]:
    """The state of a fresh schedule of ``optimizer`` (``optim``: the run's ``OptimOptions``) moved on
    to ``step``: what a checkpoint saved with ``save_weights_only`` is given, so that its resume goes
    on where the run is in its schedule, and the layout a saved scheduler state is checked against."""
    total = max(int(max_steps or 1), 1)
    scheduler = with_schedule(optimizer, optim.lr_schedule, optim.lr_floor, optim.warmup_steps, total, optim.lr_decay_fraction)
    scheduler = scheduler["lr_scheduler"]["scheduler"]
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": no step is taken here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            scheduler.step()
    return scheduler.state_dict()

