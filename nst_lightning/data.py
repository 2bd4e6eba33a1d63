"""The inputs of a run: a content image and a style image, each a file, an http(s) URL or a
built-in example (``builtin:tubingen``, ``builtin:starry_night``, ``builtin:shipwreck``,
``builtin:the_scream``).

There is no dataset to iterate: style transfer optimises one image. The train loader therefore
yields step indices only, and the module reads the images from this datamodule once, in ``setup``.
"""

from __future__ import annotations

from typing import Optional

import lightning.pytorch as pl
from jsonargparse.typing import PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader

from nst_lightning.errors import UserError
from nst_lightning.image_io import load_image

# Four 2x poolings precede conv5_x: an image's short side must leave at least a 1x1 map there.
MIN_SHORT_SIDE = 16


class StyleTransferData(pl.LightningDataModule):
    def __init__(
        self,
        content: str = "builtin:tubingen",
        style: str = "builtin:starry_night",
        image_size: PositiveInt = 512,
        style_size: Optional[PositiveInt] = None,
    ) -> None:
        """
        Args:
            content: The photo whose structure is kept: a file path, an http(s) URL or ``builtin:NAME``.
            style: The painting whose style is transferred: a file path, an http(s) URL or ``builtin:NAME``.
            image_size: Long side of the generated image in pixels (the content image is resized to it).
            style_size: Long side of the style image in pixels; by default the same as ``image_size``, so
                brush strokes keep their size relative to the output.
        """
        super().__init__()
        self.save_hyperparameters()
        self.content = content
        self.style = style
        self.image_size = int(image_size)
        self.style_size = int(style_size) if style_size is not None else None
        self.content_image: Optional[Tensor] = None
        self.style_image: Optional[Tensor] = None

    def load(self) -> None:
        """Read, check and resize both images (once); raises ``UserError`` with a one-line fix.

        The CLI calls this before the Trainer creates any file, so bad input leaves nothing behind.
        """
        if self.content_image is not None:
            return
        content = load_image(self.content, self.image_size, option="--data.content")
        style = load_image(self.style, self.style_size or self.image_size, option="--data.style")
        for image, option in ((content, "--data.content"), (style, "--data.style")):
            if min(image.shape[-2:]) < MIN_SHORT_SIDE:
                raise UserError(
                    f"{option}: resized to {image.shape[-1]}x{image.shape[-2]} pixels, its short side is "
                    f"below VGG19's minimum of {MIN_SHORT_SIDE}; raise --data.image_size or use a less "
                    "elongated image"
                )
        self.content_image, self.style_image = content, style

    def setup(self, stage: str) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        # One "batch" per optimisation step; an epoch is the whole run, so max_steps ends it.
        # On resume the loader restarts, but the Trainer stops at max_steps all the same.
        steps = self.trainer.max_steps if self.trainer is not None else -1
        if steps is None or steps < 0:
            raise UserError("set --trainer.max_steps: it is the number of optimisation steps")
        return DataLoader(range(steps), batch_size=None)
