"""Coarse-to-fine (multi-scale) optimisation: which size each step works at, and how the image, its
average and the optimizer state move from one size to the next (the ``CoarseToFine`` callback, which
``StyleTransfer.configure_callbacks`` adds when ``stage_steps`` is set).

Not in Gatys et al. (2015), which optimise at one size. At 1024 px and more, a single-scale run
spends its steps on fine texture while the large structures of the style never form (VGG19's
receptive fields stay ~200 px wide whatever the image size). Starting small and upscaling by about
sqrt(2) per stage (as crowsonkb/style-transfer-pytorch does; Gatys et al. 2017 do a two-stage
variant) forms the large structures cheaply first, and each later stage only refines.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from nst_lightning.utilities.errors import UserError, param

SCALE_FACTOR = math.sqrt(2)


def stage_sizes(final_size: int, stages: int) -> list[int]:
    """Long sides of the stages, smallest first, each ~sqrt(2) times the previous, ending at
    ``final_size``: ``stage_sizes(1024, 5) == [256, 362, 512, 724, 1024]``."""
    return [round(final_size / SCALE_FACTOR ** (stages - 1 - k)) for k in range(stages)]


def stage_of_step(step: int, stage_steps: Sequence[int]) -> int:
    """The stage that step ``step`` (0-based) belongs to, when the stages before the last take
    ``stage_steps`` steps each and the last one takes the rest."""
    end = 0
    for stage, steps in enumerate(stage_steps):
        end += steps
        if step < end:
            return stage
    return len(stage_steps)


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic upscaling of an image in [0, 1] to ``(H, W)``; clamped, as bicubic overshoots."""
    return F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1).to(image.dtype)


@torch.no_grad()
def resize_adam_state(state: dict, size: tuple[int, int], pixel_ratio: float) -> None:
    """Carry Adam's moments of the image over to a new size, in place, so that the new stage starts
    with the momentum and per-pixel step sizes of the last one instead of a cold (noisy) start.

    ``exp_avg`` is upscaled bicubically and ``exp_avg_sq`` bilinearly (it must stay non-negative), as
    crowsonkb/style-transfer-pytorch does. Our losses average over positions (Gram matrices divided by
    ``H W``, relative errors), so each pixel's gradient shrinks in proportion to the number of pixels
    (measured in docs/lab/quality.md, "Measurements behind the defaults"). The moments are divided by
    ``pixel_ratio`` (new pixels / old) and its square to match the gradients to come; otherwise
    ``exp_avg_sq``, which forgets over ~1000 steps, would shrink every step for hundreds of steps.
    """
    if "exp_avg" in state:
        state["exp_avg"] = F.interpolate(state["exp_avg"], size=size, mode="bicubic", align_corners=False) / pixel_ratio
    if "exp_avg_sq" in state:
        sq = F.interpolate(state["exp_avg_sq"], size=size, mode="bilinear", align_corners=False)
        state["exp_avg_sq"] = sq.clamp_min(0) / pixel_ratio**2


def check_schedule(stage_steps: Sequence[int], max_steps: Optional[int], datamodule: Any) -> None:
    """Fail early, with one line, on a schedule that would fail mid-run: no steps left for the final
    size, or a stage whose images are too small for VGG19 (``datamodule.size`` checks that)."""
    if max_steps is not None and max_steps >= 0 and sum(stage_steps) >= max_steps:
        raise UserError(
            f"{param('model.stage_steps')} add up to {sum(stage_steps)} steps, leaving none of "
            f"{param('trainer.max_steps')} {max_steps} for the final size; raise {param('trainer.max_steps')} "
            f"or lower {param('model.stage_steps')}"
        )
    for long_side in stage_sizes(datamodule.image_size, len(stage_steps) + 1):
        datamodule.size(long_side)


class CoarseToFine(pl.Callback):
    """Moves the optimisation to the next size when its stage's steps are done: upscales the image
    (in place, so the optimizer keeps its reference), its average and Adam's moments, restarts
    L-BFGS, and has the module recompute its targets at the new size. It duck-types the module
    (``image``, ``average``, ``parameterisation``, ``optim.make_optimizer``, ``refresh_targets``).

    The current stage is saved in checkpoints (``nst_stage``, with the schedule ``nst_stage_steps``),
    so that a resume continues at the right size; a checkpoint made with another schedule is refused.
    """

    def __init__(self, stage_steps: Sequence[int]) -> None:
        self.stage_steps = list(stage_steps)
        self.scale_index = 0  # 0: the smallest size; len(stage_steps): the final one

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        target = stage_of_step(trainer.global_step, self.stage_steps)
        while self.scale_index < target:
            self._next_scale(trainer, pl_module)
        if self.stage_steps:
            # A host tensor: a float would be copied to the GPU every step (a host-device sync).
            pl_module.log("train/stage", torch.tensor(float(self.scale_index)))

    @torch.no_grad()
    def _next_scale(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.scale_index += 1
        size = self.image_shape(trainer.datamodule, self.scale_index)
        image, average = pl_module.image, pl_module.average
        old_size = tuple(image.shape[-2:])
        pixel_ratio = (size[0] * size[1]) / (image.shape[-2] * image.shape[-1])
        # Like crowsonkb's, a new stage starts from the averaged iterate when there is one: the noise
        # of the last Adam steps would otherwise be upscaled into blobs.
        start = average.get() if average is not None and average.count.item() > 0 else image
        image.data = resize_image(start.to(image.dtype), size)
        if average is not None:
            average.resize(size)
        if any(isinstance(optimizer, torch.optim.LBFGS) for optimizer in trainer.optimizers):
            # L-BFGS's history is a set of flat vectors of the old size: no meaningful upscaling. A new
            # one starts (as each stage of jcjohnson's multires script restarts its L-BFGS); L-BFGS
            # takes no learning-rate schedule, so there is no scheduler to move to it.
            trainer.optimizers = [pl_module.optim.make_optimizer(pl_module.parameterisation.optimised(image))]
        # Adam's optimizer persists, its state resized below, and so does its learning-rate schedule
        # (``model/schedules.py``), which runs over the whole run's global step, not per stage: each
        # stage refines what the last one formed, and the last stage ends at the floor, so the last
        # image is the settled one.
        # What the optimizer moves (the image, or a pyramid's coordinates: ``pl_module.parameterisation``) and its state.
        for optimizer in trainer.optimizers:
            pl_module.parameterisation.resize_state(optimizer, image, old_size, pixel_ratio, resize_adam_state)
        pl_module.refresh_targets()

    def image_shape(self, datamodule: Any, scale_index: int) -> tuple[int, int]:
        """``(H, W)`` of the image at stage ``scale_index``: the content image's at that long side."""
        long_side = stage_sizes(datamodule.image_size, len(self.stage_steps) + 1)[scale_index]
        return datamodule.size(long_side)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        # Top-level keys, as checkpoints made before this callback existed have them.
        checkpoint["nst_stage"] = self.scale_index
        # Part of the inputs' fingerprint (the datamodule stores the rest): the stage sizes follow
        # from it, so a state made for one schedule cannot continue another.
        checkpoint["nst_stage_steps"] = list(self.stage_steps)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        check_same_schedule(checkpoint, self.stage_steps)
        scale_index = checkpoint.get("nst_stage", 0)
        saved = checkpoint["state_dict"].get("image")
        expected = self.image_shape(trainer.datamodule, scale_index) if scale_index <= len(self.stage_steps) else None
        if saved is not None and expected != tuple(saved.shape[-2:]):
            raise UserError(
                f"the checkpoint's image is {saved.shape[-1]}x{saved.shape[-2]} (stage {scale_index}) but the "
                f"inputs and {param('model.stage_steps')} give another size; resume with the same data options, "
                f"or start a new run from its image with {param('model.init')} image {param('model.init_image')} CKPT"
            )
        self.scale_index = scale_index


def check_same_schedule(checkpoint: dict[str, Any], stage_steps: Sequence[int], name: str = "the checkpoint") -> None:
    """Refuse to resume a checkpoint made with another ``stage_steps``: its stage sizes differ."""
    saved = checkpoint.get("nst_stage_steps")
    if saved is not None and list(saved) != list(stage_steps):
        raise UserError(
            f"{param('model.stage_steps')} is {list(stage_steps)} but {name} was made with {list(saved)}; "
            f"resume with the same schedule, or start a new run from its image with {param('model.init')} image "
            f"{param('model.init_image')} {name}"
        )
