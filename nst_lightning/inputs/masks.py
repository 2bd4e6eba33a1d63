"""Masks over the photo and the paintings: which part of the photo takes which style (Gatys et al.
2017, "Controlling Perceptual Factors in Neural Style Transfer", Sec. 4), as the user gives them.

A ``Region`` is a mask over the photo and the painting(s) whose style it takes (none: it keeps the
photo), optionally only from a part of the painting (``style_mask``). ``read_mask`` turns a greyscale
or colour-label image into weights in [0, 1] at its image's size. The loss that uses them is
``loss/guided.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from nst_lightning.inputs.images import open_image
from nst_lightning.utilities.errors import UserError, param
from nst_lightning.utilities.option_types import FiniteNonNegativeFloat

ASPECT_TOLERANCE = 0.01  # a mask whose aspect differs from its image's by more is refused, not stretched
COLOR_TOLERANCE = 16  # per channel, out of 255: a label colour survives JPEG's rounding near it


@dataclass
class Region:
    """One part of the photo and the style it takes.

    Args:
        mask: Where the region is: a greyscale image the photo's shape (white in, black out; grey
            values weigh pixels partly in), or with ``color``, a colour-label image.
        style: The painting(s) whose style the region takes (a file, an http(s) URL or
            ``builtin:NAME``, or a list to blend); none: the region keeps the photo.
        style_weights: Blend weights of a list of paintings (default equal).
        style_mask: Take the style only from this part of the painting (a greyscale image the
            painting's shape); default the whole painting.
        color: ``#rrggbb``: the region is where ``mask`` has this colour (one label image for all regions).
        invert: Use the mask's complement (e.g. the town from a mask of the sky).
        weight: The region's share of the style loss, relative to the other regions' (default equal).
    """

    mask: str
    style: Union[str, list[str], None] = None
    style_weights: Optional[list[FiniteNonNegativeFloat]] = None
    style_mask: Optional[str] = None
    color: Optional[str] = None
    invert: bool = False
    weight: FiniteNonNegativeFloat = 1.0

    def __post_init__(self) -> None:
        # Plain Python values (the parser hands over float subclasses): regions go into checkpoints,
        # which load with weights_only.
        self.weight = float(self.weight)
        self.style_weights = None if self.style_weights is None else [float(w) for w in self.style_weights]
        self.style = self.style if self.style is None or isinstance(self.style, str) else [str(s) for s in self.style]
        self.invert = bool(self.invert)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("mask", "style", "style_weights", "style_mask", "color", "invert", "weight")}

    @property
    def styles(self) -> list[str]:
        return [] if self.style is None else [self.style] if isinstance(self.style, str) else list(self.style)


def check_regions(regions: Sequence[Region]) -> None:
    """Refuse region lists that cannot mean anything, before any image is read."""
    option = param("data.regions")
    if not regions:
        raise UserError(f"{option} is an empty list; give at least one region (a mask and a style), or leave it out")
    if not any(region.styles for region in regions):
        raise UserError(f"{option}: no region has a style, so nothing would be styled; give at least one region a style")
    for number, region in enumerate(regions, start=1):
        if region.color is not None:
            parse_color(region.color, f"{option} region {number}")
        if region.style_weights is not None and len(region.style_weights) != len(region.styles):
            raise UserError(
                f"{option} region {number}: {len(region.style_weights)} style_weights for {len(region.styles)} styles; "
                "give one weight per painting"
            )
        if region.style_weights is not None and sum(region.style_weights) <= 0:
            raise UserError(f"{option} region {number}: style_weights are all zero; give at least one positive weight")
        if region.style_mask is not None and not region.styles:
            raise UserError(f"{option} region {number} has a style_mask but no style; give it a style, or leave out style_mask")
    if sum(region.weight for region in regions if region.styles) <= 0:
        raise UserError(f"{option}: the weights of the regions with a style are all zero; give one a positive weight")


def parse_color(text: str, where: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if not match:
        raise UserError(f"{where}: color {text!r} is not #rrggbb (e.g. \"#ff0000\")")
    value = int(match[1], 16)
    return value >> 16, (value >> 8) & 255, value & 255


def read_mask(
    data: bytes,
    size: tuple[int, int],
    source: str,
    option: str,
    color: Optional[str] = None,
    invert: bool = False,
    original: Optional[tuple[int, int]] = None,
) -> Tensor:
    """The mask in ``data`` as ``[1, 1, H, W]`` weights in [0, 1] at ``size`` (``(H, W)``, its image's):
    greyscale, or where the image has ``color``; resized (by area) when its aspect is that of its
    image (``original``, its ``(H, W)`` before resizing: a small stage's rounding does not count)
    within 1%, refused otherwise. An empty mask is refused."""
    # The file's numbers, not its colours: a label colour and a grey weight are what the editor's
    # picker showed in the mask's own space (converting a Display P3 mask would move its labels).
    image = open_image(data, None, source, option, convert_rgb=False)
    height, width = size
    reference_height, reference_width = original or size
    aspect, image_aspect = image.width / image.height, reference_width / reference_height
    if abs(math.log(aspect / image_aspect)) > math.log1p(ASPECT_TOLERANCE):
        raise UserError(
            f"{option}: the mask {source} is {image.width}x{image.height} but its image is {reference_width}x{reference_height} "
            f"(aspect {aspect:.3f} against {image_aspect:.3f}); make the mask from that image, or crop it to the same aspect"
        )
    if color is not None:
        wanted = torch.tensor(parse_color(color, option), dtype=torch.int16)
        pixels = torch.from_numpy(np.array(image.convert("RGB"))).to(torch.int16)
        selected = ((pixels - wanted).abs().amax(dim=-1) <= COLOR_TOLERANCE).float()
        if not selected.any():
            raise UserError(f"{option}: no pixel of {source} has the colour {color}; the colours in it are {_main_colors(image)}")
        mask = selected[None, None]
    else:
        grey = torch.from_numpy(np.array(image.convert("L"))).float() / 255
        mask = grey[None, None]
    if invert:
        mask = 1 - mask
    if tuple(mask.shape[-2:]) != (height, width):
        mask = F.interpolate(mask, size=(height, width), mode="area" if mask.shape[-1] >= width else "bilinear")
    mask = mask.clamp(0, 1)
    if float(mask.max()) <= 0:
        what = "its complement is all black" if invert else "it is all black"
        raise UserError(f"{option}: the mask {source} selects nothing ({what}); white marks where the region is")
    return mask


def _main_colors(image: Image.Image, count: int = 5) -> str:
    small = image.convert("RGB").resize((64, 64), Image.NEAREST)
    colors = sorted(small.getcolors(64 * 64), reverse=True)[:count]
    return ", ".join(f"#{r:02x}{g:02x}{b:02x}" for _, (r, g, b) in colors)


def is_full(mask: Optional[Tensor]) -> bool:
    """A mask that covers everything: treated as none, so that one full region is exactly the
    unguided loss."""
    return mask is None or bool((mask >= 1).all())
