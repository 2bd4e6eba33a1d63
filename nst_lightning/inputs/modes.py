"""Pixel modes: whatever Pillow decodes (palette, grey with alpha, 16-bit, 32-bit integer, floating
point, CMYK...) as the 8-bit ``RGB``, ``L`` or ``CMYK`` that colour profiles convert, and why a file
Pillow cannot decode is refused.

32-bit integer and floating-point images (TIFFs from HDR merges, astronomy and science software) are
scaled by their format's range, as photographers' software reads them: floats 0 to 1, integers 0 to
their type's largest value. Scaling by each file's own range instead would make a night photo as
bright as a day one; a file that its range leaves without its picture is refused in one line.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, TiffImagePlugin

from nst_lightning.utilities.errors import UserError


def unreadable(data: bytes) -> str:
    """Why Pillow did not recognise ``data``, and the fix: for a TIFF, the samples it cannot decode
    (Photoshop's 32-bit mode writes floating-point RGB, which Pillow has no mode for)."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        try:
            header = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
            stream = io.BytesIO(data)
            stream.seek(header.next)
            header.load(stream)
            bits, formats = header.get(258, (1,)), header.get(339, (1,))
            kind = {1: "unsigned integer", 2: "signed integer", 3: "floating-point"}.get(formats[0], f"sample format {formats[0]}")
            return (
                f"is a TIFF of {bits[0]}-bit {kind} samples ({len(bits)} a pixel), which cannot be decoded; "
                "export it as an 8- or 16-bit TIFF"
            )
        except Exception:  # not even a readable TIFF directory
            pass
    return "is not a readable image (not a format Pillow recognises); give a JPEG, PNG or other image file"


def eight_bit(image: Image.Image, source: str, option: str) -> Image.Image:
    """``image`` as 8-bit ``RGB``, ``L`` or ``CMYK`` (the modes profiles convert), its profile kept;
    transparency composited over white rather than dropped to black."""
    info = image.info
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale: PIL's convert clips instead of scaling, so scale to 8 bits first.
        image = image.point(lambda v: v / 256).convert("L")
    elif image.mode in ("I", "F"):
        image = _scaled(image, source, option)
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("PA", "RGBa", "RGBX", "YCbCr", "HSV"):
        image = image.convert("RGBA" if "A" in image.mode or "a" in image.mode else "RGB")
    elif image.mode in ("1", "La"):
        image = image.convert("LA" if image.mode == "La" else "L")
    if image.mode in ("RGBA", "LA"):
        background = Image.new(image.mode[:-1], image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode not in ("RGB", "L", "CMYK"):
        if image.mode == "LAB":  # Pillow converts CIELab as littlecms does: its (Lab) profile is done with
            info = {key: value for key, value in info.items() if key != "icc_profile"}
        image = image.convert("RGB")
    image.info = info  # the profile stays with the pixels (new images from convert/paste lose some keys)
    return image


def _scaled(image: Image.Image, source: str, option: str) -> Image.Image:
    """A 32-bit integer or floating-point image as 8 bits, by its format's range: floats 0 to 1 (as
    they are in HDR and linear workflows; brighter highlights clip), integers 0 to their largest
    value (2^32 - 1 for an unsigned 32-bit TIFF; 16 bits for other formats' ``I`` images), as
    photographers' software reads a file whatever its content. A file that this leaves without its
    picture (most of it clipped, or all under one 8-bit level) is refused rather than styled."""
    values = np.asarray(image)
    tags = getattr(image, "tag_v2", {}) if image.format == "TIFF" else {}
    bits, signed = tags.get(258, (16,))[0], tags.get(339, (1,))[0] == 2
    if image.mode == "F":
        values, white, kind = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0), 1, "a floating-point"
    elif bits == 32 and not signed:
        values, white, kind = values.view(np.uint32), 2**32 - 1, "an unsigned 32-bit"  # Pillow reads them as signed
    elif bits == 32:
        white, kind = 2**31 - 1, "a signed 32-bit"
    elif signed:
        white, kind = 2**15 - 1, "a signed 16-bit"
    else:
        white, kind = 2**16 - 1, "a 16-bit"
    eight = np.rint(np.clip(values.astype(np.float32) * np.float32(255 / white), 0, 255)).astype(np.uint8)
    low, high, median = (float(v) for v in (values.min(), values.max(), np.median(values)))
    if (eight.min() == eight.max() and low != high) or (image.mode == "F" and median > 1):
        raise UserError(
            f"{option}: {source} is {kind} image whose values span {low:,.6g} to {high:,.6g} (median {median:,.6g}) "
            f"but whose range is 0 to {white:,}: read so, {'most of it is white' if median > white else 'it is one flat tone'}; "
            "export it as an 8- or 16-bit image" + (", or with values in 0 to 1" if image.mode == "F" else "")
        )
    return Image.fromarray(eight)
