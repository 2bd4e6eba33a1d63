"""Decoding images (the bytes come from ``sources.py``; results are written by ``run/output.py``).

Images are float tensors ``[1, 3, H, W]`` in [0, 1]. Reading applies the EXIF orientation (phones
store portraits sideways), converts any mode (grayscale, palette, CMYK, 16-bit) to RGB and resizes
with antialiasing (Lanczos), since aliasing in a downscaled style image becomes texture in the result.

Every input is untrusted: a file may be empty, truncated, not an image at all or a decompression
bomb, and a URL may stall, redirect forever or return a web page. Each case ends in a ``UserError``
naming the option and the fix; nothing here decodes more pixels than it has to.
"""

from __future__ import annotations

import io
import warnings

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from nst_lightning.inputs.sources import URL_TIMEOUT_S, read_source
from nst_lightning.utilities.errors import UserError

# PIL's own bomb guard warns at 89 Mpx and raises at twice that; raise at the warning level instead.
MAX_PIXELS = 89_478_485


# ---- decoding ------------------------------------------------------------------------------------


def open_image(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> Image.Image:
    """Decode ``data`` to an upright RGB PIL image, at reduced scale where the format allows.

    A JPEG is decoded directly at 1/2, 1/4 or 1/8 scale when that still leaves at least twice
    ``long_side`` (so a 24-megapixel photo for a 512 px result never exists at full size in memory).
    The EXIF orientation (phones store portraits sideways) is applied to that reduced image.
    """
    if not data:
        raise UserError(f"{option}: {source} is empty (0 bytes); give a JPEG, PNG or other image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_PIXELS; the check below turns that into an error of our own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise _bomb(source, option, f"{image.width}x{image.height} pixels")
        if long_side is not None and image.format == "JPEG":
            image.draft("RGB", (2 * long_side, 2 * long_side))
        image.load()
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # a damaged EXIF block is no reason to refuse an image that decodes
            pass
        return _to_rgb(image)
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise _bomb(source, option, f"over {2 * MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise UserError(
            f"{option}: {source} is not a readable image (not a format Pillow recognises); "
            "give a JPEG, PNG or other image file"
        ) from None
    except Exception as err:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, zlib.error...
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "truncated" in detail or isinstance(err, EOFError):
            raise UserError(
                f"{option}: {source} is truncated ({detail}); download or export the complete file again"
            ) from None
        raise UserError(
            f"{option}: {source} is not a readable image ({detail}); give a JPEG, PNG or other image file"
        ) from None


def header_size(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> tuple[int, int]:
    """``(height, width)`` that ``decode_pixels`` gives, read from the header alone (no pixel is
    decoded; a JPEG's reduced-scale decoding can make it differ by a pixel): so that a size that
    cannot fit in memory is refused before it is decoded. Unreadable data raises ``open_image``'s error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:
        image = open_image(data, long_side, source, option)  # raises the one-line error it deserves
        width, height, orientation = image.width, image.height, 1
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees (ImageOps.exif_transpose)
        width, height = height, width
    if long_side is None:
        return height, width
    scale = long_side / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _bomb(source: str, option: str, size: str) -> UserError:
    return UserError(
        f"{option}: {source} declares {size}, more than the limit of {MAX_PIXELS:,} "
        "(a decompression bomb, or a huge image); give a smaller image"
    )


def decode_image(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> Tensor:
    """``data`` as ``[1, 3, H, W]`` in [0, 1], upright, its long side resized to ``long_side``."""
    return pixels_to_float(decode_pixels(data, long_side, source, option))


def pixels_to_float(pixels: Tensor) -> Tensor:
    """8-bit ``[1, 3, H, W]`` pixels as floats in [0, 1] (exactly ``value / 255``)."""
    return pixels.float().div_(255)


def decode_pixels(data: bytes, long_side: int | None = None, source: str = "image", option: str = "image") -> Tensor:
    """As ``decode_image``, but 8-bit (``uint8``): a quarter of the memory, for keeping inputs."""
    image = open_image(data, long_side, source, option)
    if long_side is not None:
        scale = long_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    # .contiguous(): NCHW in memory too, not a view with HWC strides (which convolutions would then
    # silently run as channels_last, and which L-BFGS's flat views cannot take).
    return array.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image(source: str, long_side: int | None = None, option: str = "image", timeout: float = URL_TIMEOUT_S) -> Tensor:
    """Load ``source`` as ``[1, 3, H, W]`` in [0, 1], its long side resized to ``long_side``.

    ``option`` names the setting the source came from, so that errors say what to change.
    """
    return decode_image(read_source(source, option, timeout), long_side, source, option)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the mode; transparency is composited over white rather than dropped to black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert("RGB") clips instead of scaling, so scale to 8 bits first.
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")
