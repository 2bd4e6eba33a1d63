"""Colour profiles: every input's pixel values as sRGB, the space the optimisation works in (VGG19 was
trained on sRGB photos, and results are written as sRGB).

A pixel's numbers mean a colour only with the file's profile: most phone photos are Display P3 and
many camera files Adobe RGB, whose (255, 0, 0) is a deeper red than sRGB's. Read as sRGB they lose
saturation; a profile that swaps channels would even turn red into blue. So a profile embedded in the
file (ICC, in a JPEG, PNG, TIFF, WebP, HEIF or AVIF) is converted to sRGB by littlecms through
``PIL.ImageCms``; a HEIF's nclx colour description (primaries and transfer curve, no ICC) becomes an
ICC profile built here (``rgb_profile``). No profile: the numbers are sRGB already (as the web assumes).

Rendering intent: ImageCms's default, perceptual: the ICC's choice for photographs; for the matrix
profiles of cameras and phones it is relative colorimetric (out-of-gamut colours clip in sRGB).
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageCms

# CIE xy chromaticities of the red, green and blue primaries, and of the white.
D65 = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
ADOBE_RGB_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
# The sRGB curve as an ICC parametric curve of type 3 (g, a, b, c, d): Display P3 uses it too.
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, as Adobe RGB (1998) stores it (u8Fixed8)

# nclx transfer codes (ITU-T H.273) that HEIF files carry instead of an ICC profile, and their curves.
NCLX_CURVES: dict[int, tuple[float, ...]] = {
    # The SDR video curves (BT.709, BT.601, BT.2020) are shown as sRGB by browsers and phones.
    1: SRGB_CURVE, 6: SRGB_CURVE, 13: SRGB_CURVE, 14: SRGB_CURVE, 15: SRGB_CURVE,
    4: (2.2,), 5: (2.8,), 8: (1.0,),
}

_D50 = np.array([0.9642, 1.0, 0.8249])  # the ICC's profile connection space white
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


class ProfileIgnored(UserWarning):
    """An input's colour profile could not be used (damaged, or for another kind of image): its
    pixels are read as sRGB."""


def to_srgb(image: Image.Image, source: str, convert_rgb: bool = True) -> Image.Image:
    """``image`` (mode ``RGB``, ``L`` or ``CMYK``, no alpha) with its embedded profile converted to
    sRGB, as an ``RGB`` image (``L`` stays ``L`` without a profile). ``convert_rgb=False`` keeps RGB and
    grey numbers as they are (masks: their numbers are weights and labels, not colours); CMYK is
    always converted, since it has no RGB numbers to keep. ``source`` names the file in warnings."""
    profile = _embedded(image, source)
    if profile is None or (not convert_rgb and image.mode != "CMYK"):
        return image
    space = profile.profile.xcolor_space.strip()
    if space == "RGB" and image.mode == "L":  # a grey image tagged with an RGB profile: its greys are that space's
        image = image.convert("RGB")
    if (space, image.mode) not in (("RGB", "RGB"), ("GRAY", "L"), ("CMYK", "CMYK")):
        warnings.warn(
            f"{source}: its colour profile is for {space} images, but it is a {image.mode} image; the profile is ignored",
            ProfileIgnored,
            stacklevel=2,
        )
        return image
    try:
        return ImageCms.applyTransform(image, _transform(profile.tobytes(), image.mode))
    except (ImageCms.PyCMSError, OSError, ValueError) as err:
        warnings.warn(f"{source}: its colour profile cannot be applied ({err}); read as sRGB", ProfileIgnored, stacklevel=2)
        return image


def _embedded(image: Image.Image, source: str) -> Optional[ImageCms.ImageCmsProfile]:
    """The ICC profile in ``image.info``, or one built from a HEIF's nclx description, or None."""
    icc = image.info.get("icc_profile")
    if not icc:
        icc = nclx_profile(image.info.get("nclx_profile"))
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError) as err:
        warnings.warn(f"{source}: its colour profile is damaged ({err}); read as sRGB", ProfileIgnored, stacklevel=3)
        return None


@functools.lru_cache(maxsize=16)
def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """A littlecms transform from ``icc`` to sRGB (building one takes milliseconds; decoding each
    stage of a multi-scale run reuses it)."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, "RGB")


def nclx_profile(nclx: Optional[dict]) -> Optional[bytes]:
    """An ICC profile for a HEIF's nclx colour description (``pillow_heif``'s ``info["nclx_profile"]``:
    the primaries' and white's chromaticities, a transfer code), or None where it means sRGB, or a
    curve this module cannot model (HDR's PQ and HLG would need tone mapping: read as sRGB)."""
    if not nclx or "color_primary_red_x" not in nclx:
        return None
    xy = [(nclx[f"color_primary_{name}_x"], nclx[f"color_primary_{name}_y"]) for name in ("red", "green", "blue", "white")]
    curve = NCLX_CURVES.get(nclx.get("transfer_characteristics"), SRGB_CURVE)
    if nclx.get("transfer_characteristics") in (16, 18):
        return None
    if curve == SRGB_CURVE and np.allclose(xy, [*SRGB_PRIMARIES, D65], atol=1e-3):
        return None
    return rgb_profile(tuple(xy[:3]), xy[3], curve, "nclx colours")


# ---- building an ICC profile (v4, matrix and curves: what cameras and phones embed) --------------


def colorants(primaries: tuple, white: tuple[float, float]) -> np.ndarray:
    """The 3x3 matrix from linear RGB to the ICC's XYZ (D50, Bradford-adapted), columns red, green, blue."""
    xyz = np.array([_xyz(primary) for primary in primaries]).T
    matrix = xyz * np.linalg.solve(xyz, _xyz(white))  # scale each primary so that R=G=B=1 is the white
    return _adaptation(white) @ matrix


def rgb_profile(primaries: tuple, white: tuple[float, float], curve: tuple[float, ...], description: str) -> bytes:
    """The bytes of an ICC v4 RGB display profile: ``primaries`` and ``white`` as CIE xy, ``curve``
    a gamma ``(g,)`` or the parametric sRGB-type curve ``(g, a, b, c, d)`` (ICC type 3)."""
    matrix = colorants(primaries, white)
    if len(curve) == 1:
        trc = b"curv" + bytes(4) + struct.pack(">IH", 1, round(curve[0] * 256)) + bytes(2)
    else:
        trc = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + _fixed(curve)
    tags = [
        (b"desc", _mluc(description)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", b"XYZ " + bytes(4) + _fixed(_D50)),
        (b"chad", b"sf32" + bytes(4) + _fixed(_adaptation(white).ravel())),
        (b"rXYZ", b"XYZ " + bytes(4) + _fixed(matrix[:, 0])),
        (b"gXYZ", b"XYZ " + bytes(4) + _fixed(matrix[:, 1])),
        (b"bXYZ", b"XYZ " + bytes(4) + _fixed(matrix[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    return icc_bytes(b"mntr", b"RGB ", tags)


def icc_bytes(device_class: bytes, space: bytes, tags: list[tuple[bytes, bytes]], version: int = 0x04300000) -> bytes:
    """An ICC profile from its tags (identical tag data is stored once), with an XYZ connection space."""
    table, body, offsets = [], b"", {}
    start = 128 + 4 + 12 * len(tags)
    for signature, data in tags:
        if data not in offsets:
            offsets[data] = start + len(body)
            body += data + bytes(-len(data) % 4)
        table.append(struct.pack(">4sII", signature, offsets[data], len(data)))
    size = start + len(body)
    # size, CMM, version, class, colour space, connection space, date, signature, platform, flags,
    # maker, model, attributes, rendering intent, illuminant (D50), creator, ID (0: not computed), reserved
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sI4sI8sI12s4s16s28s", size, b"", version, device_class, space, b"XYZ ",
        2024, 1, 1, 0, 0, 0, b"acsp", b"", 0, b"", 0, b"", 0, _fixed(_D50), b"", b"", b"",
    )
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body


def _xyz(chromaticity: tuple[float, float]) -> np.ndarray:
    x, y = chromaticity
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _adaptation(white: tuple[float, float]) -> np.ndarray:
    """Bradford's chromatic adaptation from ``white`` to D50 (the ICC's ``chad`` tag)."""
    return np.linalg.inv(_BRADFORD) @ np.diag((_BRADFORD @ _D50) / (_BRADFORD @ _xyz(white))) @ _BRADFORD


def _fixed(values) -> bytes:
    """ICC s15Fixed16 numbers."""
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28) + encoded
