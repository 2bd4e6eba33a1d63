"""Decoding images (the bytes come from ``sources.py``; results are written by ``outputs/results.py``).

Images are float tensors ``[1, 3, H, W]`` in [0, 1], in sRGB. Reading applies the EXIF orientation
(phones store portraits sideways), converts the file's colour profile to sRGB (``profiles.py``: Display
P3, Adobe RGB, CMYK...), converts any mode (grayscale, palette, CMYK, 16-bit, 32-bit integer and
float) to 8-bit RGB and resizes with antialiasing (Lanczos), since aliasing in a downscaled style
image becomes texture in the result. HEIF/HEIC (the iPhone's photos) reads through ``pillow-heif``,
AVIF through Pillow itself.

Every input is untrusted: a file may be empty, truncated, not an image at all or a decompression
bomb, and a URL may stall, redirect forever or return a web page. Each case ends in a ``UserError``
naming the option and the fix; nothing here decodes more pixels than it has to, and what decoding
costs is bounded (``_check_cost``), not what a header declares: a 200-megapixel camera JPEG for a
512 px result is decoded at 1/8 scale and loads, a PNG declaring 100 megapixels in 200 bytes does not.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
import warnings
from typing import Iterator, Optional

import pillow_heif
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from nst_lightning.inputs.modes import eight_bit, unreadable
from nst_lightning.inputs.profiles import to_srgb
from nst_lightning.inputs.sources import URL_TIMEOUT_S, read_source
from nst_lightning.utilities.errors import UserError

# pillow-heif's documented integration: Pillow then opens HEIF wherever it opens a file (here, the
# URL check in sources.py, the contact sheet's thumbnails). Idempotent.
pillow_heif.register_heif_opener()

# What decoding may cost, in pixels actually decoded (a JPEG's after its reduced-scale decoding):
# any file may decode MAX_PIXELS (Pillow's own warning level; 268 MB as 8-bit RGB); above that, a
# file must hold at least a byte per PIXELS_PER_BYTE pixels (camera JPEGs and HEICs hold about 2 to
# 10 pixels a byte, a flat-colour 108 Mpx JPEG 64, while a PNG can declare 1,000 pixels a byte and a
# BMP's run-length code any number), and nothing decodes more than MAX_DECODED_PIXELS (16384^2: a
# 200 Mpx camera file fits; 1 GB as Pillow holds RGB).
MAX_PIXELS = 89_478_485
PIXELS_PER_BYTE = 100
MAX_DECODED_PIXELS = 2**28

# Pillow checks the *declared* size in Image.open (and some loaders) against Image.MAX_IMAGE_PIXELS,
# raising at 179 Mpx whatever a JPEG would really decode; _check_cost replaces that check, so it is
# lifted while this module decodes, under a lock so that no concurrent decode leaves it lifted.
_PILLOW_GUARD = threading.Lock()


# ---- decoding ------------------------------------------------------------------------------------


def open_image(
    data: bytes, long_side: int | None = None, source: str = "image", option: str = "image", convert_rgb: bool = True
) -> Image.Image:
    """Decode ``data`` to an upright 8-bit RGB PIL image in sRGB, at reduced scale where the format allows.

    A JPEG is decoded directly at 1/2, 1/4 or 1/8 scale when that still leaves at least twice
    ``long_side`` on its long side (so a 24-megapixel photo for a 512 px result never exists at full
    size in memory); a HEIF from a thumbnail that large, when it has one.
    The EXIF orientation (phones store portraits sideways) is applied to that reduced image.
    ``convert_rgb=False`` keeps RGB and grey numbers as the file has them, ignoring its profile
    (masks: their numbers are weights and labels); CMYK is converted all the same.
    """
    return _srgb(data, long_side, source, option, convert_rgb).convert("RGB")


def _srgb(data: bytes, long_side: Optional[int], source: str, option: str, convert_rgb: bool = True) -> Image.Image:
    """As ``open_image``, but a grey image stays ``L`` (a third of the memory until it is resized)."""
    image = _decode(data, long_side, source, option)[0]
    try:
        return to_srgb(eight_bit(image, source, option), source, convert_rgb)
    except (ValueError, OSError) as err:  # a mode Pillow decodes but cannot convert
        raise UserError(f"{option}: {source} is a {image.mode} image that cannot be read as RGB ({err}); export it as RGB") from None


def header_size(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> tuple[int, int]:
    """``(height, width)`` that ``decode_pixels`` gives, read from the header alone (no pixel is
    decoded; a JPEG's reduced-scale decoding can make it differ by a pixel): so that a size that
    cannot fit in memory is refused before it is decoded. A file that decoding would refuse
    (unreadable, a bomb) raises ``open_image``'s error here already."""
    image, (width, height) = _decode(data, long_side, source, option, load=False)
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees (ImageOps.exif_transpose)
        width, height = height, width
    if long_side is None:
        return height, width
    scale = long_side / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


@contextlib.contextmanager
def _pillow_guard_lifted() -> Iterator[None]:
    with _PILLOW_GUARD, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(data: bytes, long_side: Optional[int], source: str, option: str, load: bool = True) -> tuple[Image.Image, tuple[int, int]]:
    """``data`` opened, its cost checked, at reduced scale where the format allows (``draft``), and
    with ``load``, decoded and upright, in the file's own mode; and the size its header declares."""
    if not data:
        raise UserError(f"{option}: {source} is empty (0 bytes); give a JPEG, PNG or other image file")
    try:
        with _pillow_guard_lifted():
            image = Image.open(io.BytesIO(data))
            declared = image.size
            _check_cost(image, len(data), long_side, source, option)
            if load:
                image.load()
                try:
                    ImageOps.exif_transpose(image, in_place=True)
                except Exception:  # a damaged EXIF block is no reason to refuse an image that decodes
                    pass
        return image, declared
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{option}: {source} {unreadable(data)}") from None
    except Exception as err:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, zlib.error...
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "truncated" in detail or isinstance(err, EOFError):
            raise UserError(
                f"{option}: {source} is truncated ({detail}); download or export the complete file again"
            ) from None
        raise UserError(
            f"{option}: {source} is not a readable image ({detail}); give a JPEG, PNG or other image file"
        ) from None


def _check_cost(image: Image.Image, size: int, long_side: Optional[int], source: str, option: str) -> None:
    """Set up reduced-scale decoding (``draft``: JPEG at 1/2, 1/4, 1/8, HEIF from a large enough
    thumbnail) when ``long_side`` allows, then refuse what decoding would cost too much: over
    ``MAX_DECODED_PIXELS``, or over ``MAX_PIXELS`` with less than a byte per ``PIXELS_PER_BYTE``."""
    width, height = image.size
    if long_side is not None and 2 * long_side < max(width, height):
        scale = 2 * long_side / max(width, height)  # keep twice the result on both sides, for Lanczos
        image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
    declared = f"{width}x{height} pixels" + (f" (decoded at {image.width}x{image.height})" if image.size != (width, height) else "")
    check_pixels(image.width, image.height, size, source, option, declared)


def check_pixels(
    width: int, height: int, size: int, source: str, option: str, declared: Optional[str] = None, noun: str = "image"
) -> None:
    """Refuse decoding a ``width`` x ``height`` picture from a file of ``size`` bytes when it costs too
    much: over ``MAX_DECODED_PIXELS``, or over ``MAX_PIXELS`` with less than a byte per
    ``PIXELS_PER_BYTE`` pixels. Also for pictures other decoders make (a clip's frames: ``noun`` video)."""
    decoded, declared = width * height, declared or f"{width}x{height} pixels"
    article = "an" if noun[0] in "aeiou" else "a"
    if decoded > MAX_PIXELS and decoded > PIXELS_PER_BYTE * size:
        raise UserError(
            f"{option}: {source} declares {declared} in only {size:,} bytes, more than {PIXELS_PER_BYTE} pixels a byte "
            f"above {MAX_PIXELS:,} pixels (a decompression bomb, or {article} {noun} of almost nothing); give a smaller {noun}"
        )
    if decoded > MAX_DECODED_PIXELS:
        raise UserError(
            f"{option}: {source} declares {declared}, more than the limit of {MAX_DECODED_PIXELS:,} decoded pixels "
            f"(a decompression bomb, or a huge {noun}); give a smaller {noun}"
        )


def pixel_limit(size: int) -> int:
    """The most pixels ``check_pixels`` lets a file of ``size`` bytes decode: its rule as one number,
    for a decoder that takes a limit (FFmpeg's ``max_pixels``)."""
    return min(MAX_DECODED_PIXELS, max(MAX_PIXELS, PIXELS_PER_BYTE * size))


def decode_image(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> Tensor:
    """``data`` as ``[1, 3, H, W]`` in [0, 1], upright, in sRGB, its long side resized to ``long_side``."""
    return pixels_to_float(decode_pixels(data, long_side, source, option))


def pixels_to_float(pixels: Tensor) -> Tensor:
    """8-bit ``[1, 3, H, W]`` pixels as floats in [0, 1] (exactly ``value / 255``)."""
    return pixels.float().div_(255)


def decode_pixels(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> Tensor:
    """As ``decode_image``, but 8-bit (``uint8``): a quarter of the memory, for keeping inputs."""
    # Converted to sRGB, then resized like any sRGB photo (at the reduced scale a JPEG decodes at,
    # littlecms converts 1.7 Mpx of a 108 Mpx photo for a 256 px result: milliseconds).
    image = _srgb(data, long_side, source, option)
    if long_side is not None:
        scale = long_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    image = image.convert("RGB")
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    # .contiguous(): NCHW in memory too, not a view with HWC strides (which convolutions would then
    # silently run as channels_last, and which L-BFGS's flat views cannot take).
    return array.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image(source: str, long_side: int | None = None, option: str = "image", timeout: float = URL_TIMEOUT_S) -> Tensor:
    """Load ``source`` as ``[1, 3, H, W]`` in [0, 1], its long side resized to ``long_side``.

    ``option`` names the setting the source came from, so that errors say what to change.
    """
    return decode_image(read_source(source, option, timeout), long_side, source, option)


