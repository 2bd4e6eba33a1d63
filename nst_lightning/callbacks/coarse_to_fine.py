"""Coarse-to-fine: ``CoarseToFine``, which every ``StyleTransfer`` adds (its ``configure_callbacks``),
moves the optimisation to the next size when a stage's steps are done. Which size each step works at,
and how an image and Adam's moments are resized, are ``scale/multiscale.py``'s.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from nst_lightning.scale.multiscale import check_same_schedule, resize_adam_state, resize_image, stage_of_step, stage_shape
from nst_lightning.utilities.errors import UserError, param


class CoarseToFine(pl.Callback):
    """Moves the optimisation to the next size when its stage's steps are done: upscales the image
    (in place, so the optimizer keeps its reference), its average and Adam's moments, restarts
    L-BFGS, and has the module recompute its targets at the new size. It duck-types the module
    (``image``, ``average``, ``optim.make_optimizer``, ``refresh_targets``).

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
            trainer.optimizers = [pl_module.optim.make_optimizer(pl_module.image)]
        # Adam's optimizer persists, its state resized below, and so does its learning-rate schedule
        # (``model/schedules.py``), which runs over the whole run's global step, not per stage: each
        # stage refines what the last one formed, and the last stage ends at the floor, so the last
        # image is the settled one.
        for optimizer in trainer.optimizers:
            if image in optimizer.state:
                resize_adam_state(optimizer.state[image], size, pixel_ratio)
        pl_module.refresh_targets()

    def image_shape(self, datamodule: Any, scale_index: int) -> tuple[int, int]:
        """``(H, W)`` of the image at stage ``scale_index``: the content image's at that long side."""
        return stage_shape(datamodule, self.stage_steps, scale_index)

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
