"""The inputs of a run: a content image and one or more style images, each a file, an http(s) URL
or a built-in example (``builtin:tubingen``, ``builtin:starry_night``, ``builtin:shipwreck``,
``builtin:the_scream``).

There is no dataset to iterate: style transfer optimises one image. The train loader therefore
yields step indices only, and the module reads the images from this datamodule: once, or once per
stage of a multi-scale schedule (``images(long_side)``).
"""

from __future__ import annotations

from typing import Optional, Union

import lightning.pytorch as pl
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
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
        style: Union[str, list[str]] = "builtin:starry_night",
        style_weights: Optional[list[NonNegativeFloat]] = None,
        image_size: PositiveInt = 512,
        style_scale: PositiveFloat = 1.0,
    ) -> None:
        """
        Args:
            content: The photo whose structure is kept: a file path, an http(s) URL or ``builtin:NAME``.
            style: The painting whose style is transferred (a file path, an http(s) URL or
                ``builtin:NAME``), or a list of them to blend.
            style_weights: With several styles, one blend weight per style image, normalised to sum to 1
                (default: equal). The target Gram matrices are the weighted sum of each image's, as in
                jcjohnson/neural-style's ``-style_blend_weights``.
            image_size: Long side of the generated image in pixels (the content image is resized to it).
            style_scale: Long side of each style image relative to the output's (at every stage of a
                multi-scale run): 1 keeps the painting's brush strokes at the size they have when the
                painting fills the output; 0.5 halves them, 2 doubles them. Independent of the content's size.
        """
        super().__init__()
        self.save_hyperparameters()
        self.content = content
        self.styles = [style] if isinstance(style, str) else list(style)
        if not self.styles:
            raise UserError("--data.style is an empty list; give at least one style image")
        weights = [1.0] * len(self.styles) if style_weights is None else [float(w) for w in style_weights]
        if len(weights) != len(self.styles):
            raise UserError(
                f"--data.style_weights has {len(weights)} values for {len(self.styles)} style images; "
                "give one weight per style image"
            )
        if sum(weights) <= 0:
            raise UserError("--data.style_weights are all zero; give at least one positive weight")
        self.style_weights = [w / sum(weights) for w in weights]
        self.image_size = int(image_size)
        self.style_scale = float(style_scale)
        # At the final size, for the logger and API users; the first style stands for the blend.
        self.content_image: Optional[Tensor] = None
        self.style_image: Optional[Tensor] = None
        self._cache: dict[int, tuple[Tensor, list[Tensor]]] = {}

    @property
    def style(self) -> Union[str, list[str]]:
        return self.styles[0] if len(self.styles) == 1 else self.styles

    def load(self) -> None:
        """Read, check and resize the images at the final size (once); raises ``UserError`` with a
        one-line fix. The CLI calls this before the Trainer creates any file, so bad input leaves
        nothing behind."""
        if self.content_image is None:
            content, styles = self.images(self.image_size)
            self.content_image, self.style_image = content, styles[0]

    def images(self, long_side: int) -> tuple[Tensor, list[Tensor]]:
        """The content image with long side ``long_side`` and the style images at ``style_scale``
        times that, each resized from its source (Lanczos), cached per size."""
        if long_side not in self._cache:
            content = load_image(self.content, long_side, option="--data.content")
            style_side = max(1, round(self.style_scale * long_side))
            styles = [load_image(s, style_side, option="--data.style") for s in self.styles]
            for image, option in [(content, "--data.content")] + [(s, "--data.style") for s in styles]:
                if min(image.shape[-2:]) < MIN_SHORT_SIDE:
                    raise UserError(
                        f"{option}: resized to {image.shape[-1]}x{image.shape[-2]} pixels, its short side is "
                        f"below VGG19's minimum of {MIN_SHORT_SIDE}; raise --data.image_size (or "
                        "--data.style_scale), use fewer --model.stage_steps, or use a less elongated image"
                    )
            self._cache[long_side] = (content, styles)
        return self._cache[long_side]

    def setup(self, stage: str) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        # One "batch" per optimisation step; an epoch is the whole run, so max_steps ends it.
        # On resume the loader restarts, but the Trainer stops at max_steps all the same.
        steps = self.trainer.max_steps if self.trainer is not None else -1
        if steps is None or steps < 0:
            raise UserError("set --trainer.max_steps: it is the number of optimisation steps")
        return DataLoader(range(steps), batch_size=None)
