"""The inputs of a run: a content image and one or more style images, each a file, an http(s) URL
or a built-in example (``builtin:tubingen``, ``builtin:starry_night``, ``builtin:shipwreck``,
``builtin:the_scream``).

There is no dataset to iterate: style transfer optimises one image. The train loader therefore
yields step indices only, and the module reads the images from this datamodule: once, or once per
stage of a multi-scale schedule (``images(long_side)``).

Checkpoints record a fingerprint of the inputs (``state_dict``): a resume with other images, other
blend weights or another size would silently optimise a different problem from a state made for
this one, so it is refused.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Union, runtime_checkable

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader

from nst_lightning.inputs._fingerprint import check_same_inputs, fingerprint
from nst_lightning.inputs.images import decode_pixels, header_size, pixels_to_float
from nst_lightning.inputs.masks import Region, check_regions, is_full, read_mask
from nst_lightning.inputs.sources import read_source
from nst_lightning.utilities.errors import UserError, param
from nst_lightning.utilities.option_types import FiniteNonNegativeFloat, FinitePositiveFloat

# Four 2x poolings precede conv5_x: an image's short side must leave at least a 1x1 map there.
MIN_SHORT_SIDE = 16


@runtime_checkable
class InputData(Protocol):
    """The datamodule as the rest of the program reads it: the inputs at any size. ``StyleTransferData``
    below is the one there is; the core, its preflight and the callbacks type their datamodule as this, and
    ``datamodule_of`` refuses a fit without one."""

    image_size: int  # the long side of the result
    contents: list[str]  # the photos: one, or K optimised together
    style_weights: list[float]  # one photo's paintings' blend weights, summing to 1
    regions: Optional[list[Any]]  # Gatys et al. (2017)'s regions, each with its paintings; None: no regions

    def load(self) -> None: ...  # decode and check every input at image_size (once)

    def size(self, long_side: int) -> tuple[int, int]: ...  # (H, W) of the result at long_side

    def header_sizes(self, long_side: int) -> tuple[tuple[int, int], list[tuple[int, int]]]: ...  # before decoding

    def images(self, long_side: int) -> tuple[Tensor, list[Tensor]]: ...  # the photo(s) [K, 3, H, W], the paintings

    def members(self, long_side: int) -> list[tuple[Tensor, list[Tensor], list[float]]]: ...  # per photo

    def region_inputs(self, long_side: int) -> list[dict[str, Any]]: ...  # with regions: each one's masks and paintings

    def check_same_inputs(self, saved: Optional[dict[str, Any]], checkpoint: str = "the checkpoint") -> None: ...

    def source_bytes(self, source: str, option: str) -> bytes: ...  # a photo's file, for its colour profile

    @property
    def content_image(self) -> Optional[Tensor]: ...  # the photo at image_size, once loaded (previews)

    @property
    def style_images(self) -> list[Tensor]: ...  # the paintings at image_size, once loaded (previews)


def datamodule_of(trainer: Any) -> InputData:
    """The trainer's datamodule, which must serve the inputs."""
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, InputData):
        raise UserError("StyleTransfer needs a StyleTransferData datamodule: trainer.fit(model, datamodule=...)")
    return datamodule


class StyleTransferData(pl.LightningDataModule):
    def __init__(
        self,
        content: Union[str, list[str]] = "builtin:tubingen",
        style: Union[str, list[str]] = "builtin:starry_night",
        style_weights: Optional[list[FiniteNonNegativeFloat]] = None,
        image_size: PositiveInt = 512,
        style_scale: FinitePositiveFloat = 1.0,
        regions: Optional[list[Region]] = None,
    ) -> None:
        """
        Args:
            content: The photo whose structure is kept: a file path, an http(s) URL or ``builtin:NAME``.
                A list of K photos of the same size at ``image_size`` optimises K results at once, as
                one ``[K, 3, H, W]`` image (what ``batch --batch_size K`` runs): each has its own targets
                and loss, and comes out as it would alone (Adam only).
            style: The painting whose style is transferred (a file path, an http(s) URL or
                ``builtin:NAME``), or a list of them to blend. With a list of K photos: one painting
                for all of them, or a list of K paintings, the k-th for the k-th photo (no blends).
            style_weights: With several styles, one blend weight per style image, normalised to sum to 1
                (default: equal). The target Gram matrices are the weighted sum of each image's, as in
                jcjohnson/neural-style's ``-style_blend_weights``.
            image_size: Long side of the generated image in pixels (the content image is resized to it).
            style_scale: Long side of each style image relative to the output's (at every stage of a
                multi-scale run): 1 keeps the painting's brush strokes at the size they have when the
                painting fills the output; 0.5 halves them, 2 doubles them. Independent of the content's size.
            regions: Spatial control (Gatys et al. 2017): a list of regions of the photo, each a mask and
                the style it takes (or none: it keeps the photo), e.g. ``[{mask: sky.png, style: a.jpg},
                {mask: sky.png, invert: true, style: b.jpg}]``; see ``masks.Region``. Replaces
                ``style``, which is then unused.
        """
        super().__init__()
        # Regions as plain dicts: checkpoints hold these and load with weights_only (no classes).
        self.save_hyperparameters(ignore=["regions"])
        self.hparams["regions"] = None if regions is None else [(r if isinstance(r, Region) else Region(**r)).as_dict() for r in regions]
        self.regions = None if regions is None else [r if isinstance(r, Region) else Region(**r) for r in regions]
        if self.regions is not None:
            check_regions(self.regions)
            if not isinstance(content, str) or style_weights is not None:
                raise UserError(
                    f"{param('data.regions')} take one photo and their own style_weights: give {param('data.content')} one photo "
                    f"and leave out {param('data.style_weights')}"
                )
            style = list(dict.fromkeys(s for region in self.regions for s in region.styles))
        self.contents = [content] if isinstance(content, str) else list(content)
        self.content = self.contents[0] if len(self.contents) == 1 else self.contents
        self.styles = [style] if isinstance(style, str) else list(style)
        if not self.contents:
            raise UserError(f"{param('data.content')} is an empty list; give at least one photo")
        if not self.styles:
            raise UserError(f"{param('data.style')} is an empty list; give at least one style image")
        if len(self.contents) > 1:
            if len(self.styles) not in (1, len(self.contents)) or style_weights is not None:
                raise UserError(
                    f"{param('data.content')} has {len(self.contents)} photos: give {param('data.style')} one painting for all, "
                    f"or {len(self.contents)} paintings (one per photo, no blend weights)"
                )
            self.styles = self.styles * len(self.contents) if len(self.styles) == 1 else self.styles
            style_weights = None
        blend = self.styles if len(self.contents) == 1 else [self.styles[0]]
        weights = [1.0] * len(blend) if style_weights is None else [float(w) for w in style_weights]
        if len(weights) != len(blend):
            raise UserError(
                f"{param('data.style_weights')} has {len(weights)} values for {len(self.styles)} style images; "
                "give one weight per style image"
            )
        if sum(weights) <= 0:
            raise UserError(f"{param('data.style_weights')} are all zero; give at least one positive weight")
        self.style_weights = [w / sum(weights) for w in weights]
        self.image_size = int(image_size)
        self.style_scale = float(style_scale)
        # Decoded inputs, 8-bit (3 bytes a pixel, not 12: a large print's inputs stay small), per
        # long side; `images()` hands out float copies, which the module keeps only while it
        # computes the targets.
        self._cache: dict[int, tuple[Tensor, list[Tensor]]] = {}
        # Each source's bytes, read once: every stage's size is decoded from them, and the
        # fingerprint hashes them (a URL is downloaded once, not once per stage).
        self._bytes: dict[str, bytes] = {}
        self._masks: dict[tuple, Tensor] = {}  # regions' masks, per source and size

    @property
    def loaded(self) -> bool:
        """Whether the inputs at the final size are decoded (``load``)."""
        return self.image_size in self._cache

    @property
    def content_image(self) -> Optional[Tensor]:
        """The content image at the final size (a float copy), once loaded."""
        return pixels_to_float(self._cache[self.image_size][0]) if self.loaded else None

    @property
    def style_images(self) -> list[Tensor]:
        """The style images at the final size (float copies), once loaded."""
        return [pixels_to_float(s) for s in self._cache[self.image_size][1]] if self.loaded else []

    @property
    def style_image(self) -> Optional[Tensor]:
        """The (first) style image at the final size."""
        return pixels_to_float(self._cache[self.image_size][1][0]) if self.loaded else None

    @property
    def style(self) -> Union[str, list[str]]:
        return self.styles[0] if len(self.styles) == 1 else self.styles

    def load(self) -> None:
        """Read, check and resize the images (and the regions' masks) at the final size (once);
        raises ``UserError`` with a one-line fix. The CLI calls this before the Trainer creates any
        file, so bad input leaves nothing behind."""
        self._decoded(self.image_size)
        if self.regions is not None:
            self.region_inputs(self.image_size)

    def source_bytes(self, source: str, option: str) -> bytes:
        """The bytes of ``source``, read once (``option`` names it in errors)."""
        if source not in self._bytes:
            self._bytes[source] = read_source(source, option)
        return self._bytes[source]

    def images(self, long_side: int) -> tuple[Tensor, list[Tensor]]:
        """The content image with long side ``long_side`` and the style images at ``style_scale``
        times that, each resized from its source (Lanczos), as floats in [0, 1] (new tensors)."""
        content, styles = self._decoded(long_side)
        return pixels_to_float(content), [pixels_to_float(s) for s in styles]

    def region_inputs(self, long_side: int) -> list[dict[str, Any]]:
        """Per region with a style, at ``long_side``: its mask over the photo (``[1, 1, H, W]``, None
        if it covers everything), its style images, their blend weights and masks (None: all of
        the painting), and its share of the style loss (shares sum to 1). Regions without a style
        are in none of them: their pixels only keep the photo."""
        content, styles = self.images(long_side)
        by_source = dict(zip(self.styles, styles))
        styled = [region for region in self.regions if region.styles]
        total = sum(region.weight for region in styled)
        out = []
        for number, region in enumerate(self.regions, start=1):
            if not region.styles:
                continue
            option = f"{param('data.regions')} region {number}"
            mask = self._mask(region.mask, tuple(content.shape[-2:]), option, self.content, region.color, region.invert)
            images = [by_source[source] for source in region.styles]
            weights = region.style_weights or [1.0] * len(images)
            style_masks = [
                None if region.style_mask is None else self._mask(region.style_mask, tuple(image.shape[-2:]), f"{option} style_mask", source)
                for image, source in zip(images, region.styles)
            ]
            out.append({
                "mask": None if is_full(mask) else mask,
                "styles": images,
                "blend": [w / sum(weights) for w in weights],
                "style_masks": [None if is_full(m) else m for m in style_masks],
                "share": region.weight / total,
            })
        return out

    def _mask(self, source: str, size: tuple[int, int], option: str, image: str, color: Optional[str] = None, invert: bool = False) -> Tensor:
        """``source``'s mask at ``size``, checked against the aspect of ``image`` (the photo or the
        painting it is for) at its own size, not of a small stage's rounded one."""
        key = (source, size, color, invert)
        if key not in self._masks:
            original = header_size(self.source_bytes(image, option), None, image, option)
            self._masks[key] = read_mask(self.source_bytes(source, option), size, source, option, color, invert, original)
        return self._masks[key]

    def size(self, long_side: int) -> tuple[int, int]:
        """``(height, width)`` of the content image at ``long_side``."""
        return tuple(self._decoded(long_side)[0].shape[-2:])

    def header_sizes(self, long_side: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """``(height, width)`` of the content image at ``long_side`` and of each style image, read from
        the files' headers without decoding them (within a pixel): for the memory estimate, which
        must refuse a size that cannot fit before it is decoded."""
        content_option, style_option = param("data.content"), param("data.style")
        sizes = [header_size(self.source_bytes(c, content_option), long_side, c, content_option) for c in self.contents]
        self._check_same_size(sizes, long_side)
        style_side = max(1, round(self.style_scale * long_side))
        return sizes[0], [header_size(self.source_bytes(s, style_option), style_side, s, style_option) for s in self.styles]

    def _check_same_size(self, sizes: list[tuple[int, int]], long_side: int) -> None:
        """The photos optimised together are one tensor: they must come out the same size."""
        for source, size in zip(self.contents, sizes):
            if size != sizes[0]:
                raise UserError(
                    f"{param('data.content')}: {source} is {size[1]}x{size[0]} at {long_side} px but {self.contents[0]} is "
                    f"{sizes[0][1]}x{sizes[0][0]}; photos optimised together must have the same size (batch groups them by size)"
                )

    def members(self, long_side: int) -> list[tuple[Tensor, list[Tensor], list[float]]]:
        """Per image of the result: its photo ``[1, 3, H, W]``, its style images and their blend
        weights, as floats at ``long_side`` (one entry, unless several photos are optimised together)."""
        content, styles = self.images(long_side)
        if len(self.contents) == 1:
            return [(content, styles, self.style_weights)]
        return [(content[k : k + 1], [styles[k]], [1.0]) for k in range(len(self.contents))]

    def _decoded(self, long_side: int) -> tuple[Tensor, list[Tensor]]:
        """The 8-bit inputs at ``long_side``, decoded once and checked."""
        if long_side not in self._cache:
            content_option, style_option = param("data.content"), param("data.style")
            photos = [decode_pixels(self.source_bytes(c, content_option), long_side, c, content_option) for c in self.contents]
            self._check_same_size([tuple(p.shape[-2:]) for p in photos], long_side)
            content = photos[0] if len(photos) == 1 else torch.cat(photos)
            style_side = max(1, round(self.style_scale * long_side))
            styles = [decode_pixels(self.source_bytes(s, style_option), style_side, s, style_option) for s in self.styles]
            for image, option in [(content, content_option)] + [(s, style_option) for s in styles]:
                if min(image.shape[-2:]) < MIN_SHORT_SIDE:
                    raise UserError(
                        f"{option}: resized to {image.shape[-1]}x{image.shape[-2]} pixels, its short side is "
                        f"below VGG19's minimum of {MIN_SHORT_SIDE}; raise {param('data.image_size')} (or "
                        f"{param('data.style_scale')}), use fewer {param('model.stage_steps')}, or use a less elongated image"
                    )
            self._cache[long_side] = (content, styles)
        return self._cache[long_side]

    # ---- the inputs' fingerprint in checkpoints (``_fingerprint.py``) ------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint's state depends on (``_fingerprint.fingerprint``)."""
        self.load()
        return fingerprint(self)

    def state_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_same_inputs(state_dict.get("fingerprint"))

    def check_same_inputs(self, saved: Optional[dict[str, Any]], checkpoint: str = "the checkpoint") -> None:
        """Refuse to resume from a checkpoint made with other inputs (``_fingerprint.check_same_inputs``)."""
        check_same_inputs(self, saved, checkpoint)

    def setup(self, stage: str) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        # One "batch" per optimisation step; an epoch is the whole run, so max_steps ends it.
        # On resume the loader restarts, but the Trainer stops at max_steps all the same.
        steps = self.trainer.max_steps if self.trainer is not None else -1
        if steps is None or steps < 0:
            raise UserError("set --trainer.max_steps: it is the number of optimisation steps")
        return DataLoader(range(steps), batch_size=None)
