"""Coarse-to-fine: ``CoarseToFine``, which every ``StyleTransfer`` adds (its ``configure_callbacks``),
moves the optimisation to the next size when a stage's steps are done. Which size each step works at,
and how an image and Adam's moments are resized, are ``scale/multiscale.py``'s.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from nst_lightning.inputs.data import InputData, datamodule_of
from nst_lightning.scale.multiscale import check_same_schedule, stage_of_step, stage_shape
from nst_lightning.utilities.errors import UserError, param


class CoarseToFine(pl.Callback):
    """Moves the optimisation to the next size when its stage's steps are done: it asks the module to
    change size (``StyleTransfer.change_size``: the image, its average and the optimizer's state
    upscaled, L-BFGS restarted, the targets at the new size).

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

    def _next_scale(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.scale_index += 1
        pl_module.change_size(self.image_shape(datamodule_of(trainer), self.scale_index))

    def image_shape(self, datamodule: InputData, scale_index: int) -> tuple[int, int]:
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
        expected = self.image_shape(datamodule_of(trainer), scale_index) if scale_index <= len(self.stage_steps) else None
        if saved is not None and expected != tuple(saved.shape[-2:]):
            raise UserError(
                f"the checkpoint's image is {saved.shape[-1]}x{saved.shape[-2]} (stage {scale_index}) but the "
                f"inputs and {param('model.stage_steps')} give another size; resume with the same data options, "
                f"or start a new run from its image with {param('model.init')} image {param('model.init_image')} CKPT"
            )
        self.scale_index = scale_index
