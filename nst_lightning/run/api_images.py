"""``stylize()``'s in-memory images (PIL images, tensors) as the sources the datamodule reads: lossless
PNGs, so that they are read, fingerprinted and resized as files are. A tensor that is not one RGB
image is refused, naming the argument, with the call that makes it one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst_lightning.run.api_arguments import ArgumentTypeError, a_noun
from nst_lightning.run.output import to_pil
from nst_lightning.utilities.errors import UserError


def as_source(image: Any, spill: Path, name: str) -> str:
    """A source ``StyleTransferData`` reads: paths and URLs as they are; a PIL image or a tensor written
    as a lossless PNG to ``spill`` (the datamodule reads, hashes and resizes sources from their bytes).
    ``name`` is the argument, as ``UserError`` messages name it (``style[1]`` for a list's second)."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, Tensor):
        image = to_pil(_as_image_tensor(image, name))
    if not isinstance(image, Image.Image):
        raise ArgumentTypeError(
            f"{name} is {a_noun(type(image).__name__)}; give a file path, an http(s) URL, builtin:NAME, a PIL image "
            "or an image tensor"
        )
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    spill.write_bytes(buffer.getvalue())
    return str(spill)


def _as_image_tensor(image: Tensor, name: str) -> Tensor:
    """``image`` as ``[3, H, W]`` in [0, 1]. Taken: ``[3, H, W]``, ``[1, 3, H, W]`` and ``[H, W, 3]`` (a
    ``[3, H, W]`` reading wins when both could apply); floats in [0, 1] or uint8 in [0, 255]. Anything
    else is refused, with the call that makes it one of those."""
    shape = list(image.shape)
    if len(shape) == 4 and shape[:2] == [1, 3]:
        image = image[0]
    elif len(shape) == 3 and shape[0] != 3 and shape[2] == 3:
        image = image.permute(2, 0, 1)
    elif not (len(shape) == 3 and shape[0] == 3):
        raise UserError(f"{name} is a tensor of shape {shape}{_shape_fix(shape)}")
    if image.numel() == 0:
        raise UserError(f"{name} is an empty tensor, of shape {shape}; give an image with pixels")
    if image.dtype == torch.uint8:
        return image.float() / 255
    if not image.is_floating_point():
        raise UserError(f"{name} is a {image.dtype} tensor; give floats in [0, 1] or uint8 in [0, 255]")
    image = image.detach().float()
    if not bool(image.isfinite().all()):
        raise UserError(f"{name} holds NaN or infinite values; give an image with values in [0, 1]")
    low, high = image.min().item(), image.max().item()
    if low < -0.5 / 255 or high > 1 + 0.5 / 255:  # within half a level of [0, 1] rounds into it
        raise UserError(
            f"{name}'s values span [{low:.3g}, {high:.3g}]; give values in [0, 1] (divide 0-255 values by 255, "
            "undo any normalisation)"
        )
    return image


def _shape_fix(shape: list[int]) -> str:
    """What a tensor of ``shape`` seems to be, and the call that makes it one RGB image."""
    takes = "give one RGB image: [3, H, W], [1, 3, H, W] or [H, W, 3]"
    if len(shape) == 4 and shape[0] > 1:
        return f", a batch of {shape[0]} images; {takes}, e.g. images[0], with one stylize() call per photo"
    channels = shape[0] if len(shape) == 3 else shape[1] if len(shape) == 4 else None
    if len(shape) == 2 or channels == 1:
        return f", one channel (grey); {takes}, e.g. image.expand(3, -1, -1) for a [1, H, W] or [H, W] one"
    if channels == 4:
        return f", 4 channels (RGBA?); {takes}, e.g. image[:3] to drop the alpha channel"
    return f"; {takes}"
