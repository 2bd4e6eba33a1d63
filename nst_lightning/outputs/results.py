"""Writing results as photographers want them: colour-managed, 8 or 16 bits, saying how they were made.

- **Colour**: every result carries an ICC profile (PNG ``iCCP``, TIFF tag 34675, JPEG ``APP2``): sRGB,
  the space the optimisation works in (inputs are converted to it when decoded, as VGG19 was trained
  on sRGB), or the photo's own RGB profile, to which the pixels are then converted (LittleCMS through
  ``PIL.ImageCms``, relative colorimetric with black-point compensation, as image editors convert).
- **Depth**: the image is optimised in fp32; 8 bits a channel band smooth gradients (skies) at print
  sizes, so a result can be 16-bit PNG (``pypng``: Pillow writes no 16-bit RGB) or TIFF (``tifffile``).
- **Provenance**: the run's configuration (the YAML of ``config.yaml``) and the program's version,
  in a PNG ``iTXt`` chunk (as image generators keep their parameters), the TIFF ``ImageDescription``
  and ``Software`` tags, or a JPEG comment; ``read_config`` reads it back for ``fit --config IMAGE``.

Every file is written atomically (``utilities.files.atomic_write``): an interrupted run never leaves a
truncated image, nor half-overwrites an older one.
"""

from __future__ import annotations

import functools
import io
import os
import zlib
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Callable, Optional

import numpy as np
import torch
import yaml
from PIL import Image, ImageCms, PngImagePlugin
from torch import Tensor

from nst_lightning.utilities.files import atomic_write

# The PNG iTXt keyword of the configuration (PNG keywords are Latin-1, 1-79 characters).
CONFIG_KEY = "nst_lightning.config"
# The first line of every embedded configuration: a YAML comment, so the text stays the YAML it was,
# and the mark that tells our configuration from another program's description or comment.
CONFIG_MARK = "# nst_lightning"
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
JPEG_QUALITY = 95  # Pillow's default of 75 shows blocks in smooth skies; results are for keeping
_MAX_JPEG_COMMENT = 65_533  # one COM segment; a longer configuration is left out of a JPEG


def program_version() -> str:
    """``nst_lightning 0.1.0``: what made the file (the installed distribution's version)."""
    try:
        return f"nst_lightning {metadata.version('nst_lightning')}"
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "nst_lightning (version unknown)"


def image_format(path: str | os.PathLike) -> str:
    """The format Pillow writes for ``path``'s extension (PNG for an unknown one)."""
    return Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """LittleCMS's sRGB profile (``PIL.ImageCms.createProfile("sRGB")``) as ICC bytes."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def embedded_profile(data: bytes) -> Optional[bytes]:
    """The ICC profile embedded in an image file's bytes, if any: read from its header, no pixel decoded."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.info.get("icc_profile") or None
    except Exception:  # unreadable data has already been refused by the datamodule; no profile here
        return None


def profile_problem(icc: bytes) -> Optional[str]:
    """Why results cannot be converted to ``icc`` (``None``: they can): not an RGB profile, not one
    LittleCMS can convert into (an input-only camera profile), or not a valid profile at all."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return f"is a {profile.profile.xcolor_space.strip()} profile, not an RGB one"
        _transform(icc)
    except (ImageCms.PyCMSError, OSError, ValueError) as err:
        return f"cannot be converted into ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    return None


def _transform(icc: bytes) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())),
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )


def to_pixels(image: Tensor, bit_depth: int = 8) -> np.ndarray:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [0, 1] as ``H x W x 3`` ``uint8`` (8) or ``uint16`` (16) pixels."""
    top = 255 if bit_depth == 8 else 65535
    # One float copy (clamp), then in place: a large print's result is hundreds of MB as floats.
    floats = image.detach().float().clamp(0, 1).squeeze(0).mul_(top).round_()
    if bit_depth == 8:
        return floats.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return floats.permute(1, 2, 0).cpu().numpy().astype(np.uint16)


def to_pil(image: Tensor) -> Image.Image:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [0, 1] to an 8-bit RGB PIL image."""
    return Image.fromarray(to_pixels(image, 8))


def save_image(
    image: Tensor,
    path: str | os.PathLike,
    bit_depth: int = 8,
    profile: Optional[bytes] = None,
    config: Optional[str] = None,
) -> Path:
    """Write ``image`` (sRGB, in [0, 1]) to ``path`` atomically, in the format its extension names.

    ``bit_depth``: 8, or 16 for PNG and TIFF. ``profile``: the ICC profile to convert the pixels to and
    tag them with (8 bits only); ``None``: sRGB, tagged as such. ``config``: the run's YAML, embedded
    with its first line ``CONFIG_MARK`` (formats without a place for text leave it out)."""
    path = Path(path)
    kind = image_format(path)
    if bit_depth == 16 and kind not in SIXTEEN_BIT_FORMATS:
        raise ValueError(f"16-bit results are PNG or TIFF, not {kind} ({path})")
    if bit_depth == 16 and profile is not None:
        raise ValueError("a 16-bit result stays sRGB: Pillow's colour management converts 8-bit images only")
    pixels = to_pixels(image, bit_depth)
    if profile is not None:
        converted = ImageCms.applyTransform(Image.fromarray(pixels), _transform(profile))
        pixels = np.asarray(converted)
    icc = profile if profile is not None else srgb_profile()
    if kind == "TIFF":
        write = _tiff(pixels, icc, config)
    elif kind == "PNG" and bit_depth == 16:
        write = _png16(pixels, icc, config)
    else:
        write = _pillow(pixels, kind, icc, config)
    return atomic_write(path, write)


def _pillow(pixels: np.ndarray, image_format: str, icc: bytes, config: Optional[str]) -> Callable[[BinaryIO], None]:
    options: dict = {"icc_profile": icc}
    if image_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", program_version())
        if config is not None:
            info.add_itxt(CONFIG_KEY, config, zip=True)
        options["pnginfo"] = info
    elif image_format == "JPEG":
        exif = Image.Exif()
        exif[0x0131] = program_version()  # EXIF Software
        options.update(quality=JPEG_QUALITY, exif=exif)
        if config is not None and len(config.encode()) <= _MAX_JPEG_COMMENT:
            options["comment"] = config.encode()
    pil = Image.fromarray(pixels)
    return lambda handle: pil.save(handle, format=image_format, **options)


def _png16(pixels: np.ndarray, icc: bytes, config: Optional[str]) -> Callable[[BinaryIO], None]:
    """A 16-bit RGB PNG by pypng, with the chunks pypng does not write put after ``IHDR``, as the
    PNG specification wants ``iCCP`` (before ``IDAT``; the text chunks there too, so that a reader
    finds them without decoding the image)."""
    import png  # here: most runs write 8-bit PNG, and every run imports this module

    height, width, _ = pixels.shape
    encoded = io.BytesIO()
    png.Writer(width, height, greyscale=False, bitdepth=16, compression=6).write(encoded, pixels.reshape(height, -1))
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    extra = [
        (b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)),
        (b"tEXt", b"Software\0" + program_version().encode("latin-1", "replace")),
    ]
    if config is not None:  # iTXt: keyword, compressed (1, method 0), no language, no translation
        extra.append((b"iTXt", CONFIG_KEY.encode("latin-1") + b"\0\1\0\0\0" + zlib.compress(config.encode())))
    return lambda handle: png.write_chunks(handle, [chunks[0], *extra, *chunks[1:]])


def _tiff(pixels: np.ndarray, icc: bytes, config: Optional[str]) -> Callable[[BinaryIO], None]:
    """A TIFF by tifffile (8 or 16 bits), deflate-compressed with the horizontal predictor (what
    Photoshop and Lightroom write, and read)."""
    description = None
    if config is not None:
        # TIFF text is 7-bit ASCII: non-ASCII characters (a path with an accent) as YAML escapes.
        description = config if config.isascii() else _ascii_yaml(config)

    import tifffile  # here: most runs write PNG, and every run imports this module

    def write(handle: BinaryIO) -> None:
        # Encoded in memory first: tifffile wants a named file, and atomic_write's is an open descriptor.
        encoded = io.BytesIO()
        tifffile.imwrite(
            encoded,
            pixels,
            photometric="rgb",
            compression="zlib",
            predictor=True,
            iccprofile=icc,
            software=program_version(),
            description=description,
            metadata=None,  # no tifffile JSON of its own in ImageDescription
        )
        handle.write(encoded.getbuffer())

    return write


def _ascii_yaml(config: str) -> str:
    mark = config.splitlines()[0] if config.startswith(CONFIG_MARK) else CONFIG_MARK
    body = yaml.safe_dump(yaml.safe_load(config), allow_unicode=False, sort_keys=False, default_flow_style=False)
    return f"{mark.encode('ascii', 'replace').decode()}\n{body}"


def embedded_config(config: str) -> str:
    """``config`` (a run's YAML) with the first line that marks it as ours and says how to rerun it."""
    return f"{CONFIG_MARK} {program_version().split(' ', 1)[1]}: how this image was made; rerun: fit --config IMAGE\n{config}"


def read_config(path: str | os.PathLike) -> Optional[str]:
    """The run configuration embedded in the result image at ``path`` (``None``: it carries none).
    Raises ``OSError`` when the file cannot be read, ``PIL.UnidentifiedImageError`` for a non-image."""
    with Image.open(path) as image:
        if image.format == "PNG":
            text = image.info.get(CONFIG_KEY)
        elif image.format == "TIFF":
            text = image.tag_v2.get(270)
        elif image.format in ("JPEG", "MPO"):
            comment = image.info.get("comment", b"")
            text = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
        else:
            text = None
    return str(text) if isinstance(text, str) and text.startswith(CONFIG_MARK) else None
