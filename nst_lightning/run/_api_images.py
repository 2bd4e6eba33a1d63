"""``stylize()``'s in-memory images (PIL images, tensors) as the sources the datamodule reads: lossless
PNGs, so that they are read, fingerprinted and resized as files are. A tensor that is not one RGB
image is refused, naming the argument, with the call that makes it one.

What the inputs cost is checked before it is spent, as the CLI's preflight checks a run: an image
from its shape alone (no larger than a photo file may decode to, its copy to a PNG within the memory
there is), and the photo and every painting at the working size from their headers (``check_held``).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Optional

import torch
from PIL import Image
from torch import Tensor

from nst_lightning.inputs.images import MAX_DECODED_PIXELS
from nst_lightning.outputs.results import to_pil
from nst_lightning.run._api_arguments import ArgumentTypeError, a_noun
from nst_lightning.scale.memory import gb
from nst_lightning.utilities.errors import UserError, param

# Peak memory of ``as_source`` a pixel of an in-memory image, measured at 16 Mpx: 21 bytes from a float
# tensor (its finite check, the clamped float copy, the 8-bit one, Pillow's, the PNG), 27 from a uint8
# one (its float copy first), 7 from a PIL image; rounded up.
SPILL_BYTES_PER_PIXEL = 30
# What an input holds at the working size once decoded: its 8-bit pixels (3 bytes a pixel, kept) and
# the float copy the datamodule hands out (12), of every painting at once.
HELD_BYTES_PER_PIXEL = 15


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


def check_spill(image: Any, name: str, limit: Optional[float], where: str) -> None:
    """Refuse, from its size alone (nothing read or copied), an in-memory image larger than a photo
    file may decode to (``MAX_DECODED_PIXELS``), or whose copy to a PNG (``as_source``) needs more than
    ``limit`` bytes (``where`` says whose limit); paths, URLs and malformed tensors pass (the datamodule
    and ``as_source`` refuse those)."""
    size = image.size if isinstance(image, Image.Image) else _tensor_size(image) if isinstance(image, Tensor) else None
    if size is None:
        return
    width, height = size
    fix = "resize it first (torch.nn.functional.interpolate, or PIL's Image.thumbnail): it is resized to image_size anyway"
    if width * height > MAX_DECODED_PIXELS:
        raise UserError(
            f"{name} is a {width}x{height} image ({width * height:,} pixels), more than the {MAX_DECODED_PIXELS:,} a photo "
            f"file may decode to; {fix}"
        )
    need = SPILL_BYTES_PER_PIXEL * width * height
    if limit is not None and need > limit:
        raise UserError(
            f"{name} is a {width}x{height} image: reading it as the run's input takes about {gb(need)} of memory, more "
            f"than {where}; {fix}, or give {param('model.check_memory')}=False to try anyway"
        )


def check_held(data: Any, limit: Optional[float], where: str) -> None:
    """Refuse, from the images' headers (nothing decoded), paintings that cannot be held at the working
    size: every one is decoded and handed out as floats at once (``HELD_BYTES_PER_PIXEL``). Where the
    photo's pixels outweigh them, the run's own estimate (``preflight.check_inputs``) says more."""
    if limit is None:
        return
    content, styles = data.header_sizes(data.image_size)
    photos, paintings = len(data.contents) * math.prod(content), sum(map(math.prod, styles))
    need = HELD_BYTES_PER_PIXEL * (photos + paintings)
    if need > limit and paintings > photos:
        many = f"{len(styles)} paintings" if len(styles) > 1 else "the painting"
        raise UserError(
            f"{param('data.style')}: {many} at {param('data.image_size')} {data.image_size} (x {param('data.style_scale')} "
            f"{data.style_scale:g}) take about {gb(need)} of memory as the run's inputs with the photo, more than {where}; "
            f"blend fewer paintings, or lower {param('data.image_size')} or {param('data.style_scale')}, or give "
            f"{param('model.check_memory')}=False to try anyway"
        )


def _tensor_size(image: Tensor) -> Optional[tuple[int, int]]:
    """``(width, height)`` of an image tensor ``_as_image_tensor`` takes, from its shape; None for another."""
    shape = _image_shape(list(image.shape))
    return None if shape is None else (shape[2], shape[1])


def _image_shape(shape: list[int]) -> Optional[list[int]]:
    """``[3, H, W]`` for the shapes an image tensor may have (``_as_image_tensor``), else None."""
    if len(shape) == 4 and shape[:2] == [1, 3]:
        return shape[1:]
    if len(shape) == 3 and shape[0] != 3 and shape[2] == 3:
        return [3, *shape[:2]]
    return shape if len(shape) == 3 and shape[0] == 3 else None


def _as_image_tensor(image: Tensor, name: str) -> Tensor:
    """``image`` as ``[3, H, W]`` in [0, 1]. Taken: ``[3, H, W]``, ``[1, 3, H, W]`` and ``[H, W, 3]`` (a
    ``[3, H, W]`` reading wins when both could apply); floats in [0, 1] or uint8 in [0, 255]. Anything
    else is refused, with the call that makes it one of those."""
    shape = list(image.shape)
    if _image_shape(shape) is None:
        raise UserError(f"{name} is a tensor of shape {shape}{_shape_fix(shape)}")
    if len(shape) == 4:
        image = image[0]
    elif shape[0] != 3:
        image = image.permute(2, 0, 1)
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
