"""Reading images from files, URLs or the built-in examples, and writing results safely.

Images are float tensors ``[1, 3, H, W]`` in [0, 1]. Reading applies the EXIF orientation (phones
store portraits sideways), converts any mode (grayscale, palette, CMYK, 16-bit) to RGB and resizes
with antialiasing (Lanczos), since aliasing in a downscaled style image becomes texture in the result.
"""

from __future__ import annotations

import io
import os
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from nst_lightning.errors import UserError

BUILTIN_PREFIX = "builtin:"
BUILTIN_IMAGES = ("tubingen", "starry_night", "shipwreck", "the_scream")
URL_TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 64 * 2**20
# PIL's own bomb guard warns at 89 Mpx and raises at twice that; raise at the warning level instead.
MAX_PIXELS = 89_478_485


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _read_bytes(source: str, option: str) -> bytes:
    """The raw bytes of a built-in image, an http(s) URL or a local file."""
    if source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_IMAGES:
            raise UserError(
                f"{option}: unknown built-in image {source!r}; "
                f"choose one of {', '.join(BUILTIN_PREFIX + n for n in BUILTIN_IMAGES)}"
            )
        return resources.files("nst_lightning.assets").joinpath(f"{name}.jpg").read_bytes()
    if is_url(source):
        request = urllib.request.Request(source, headers={"User-Agent": "nst_lightning"})
        try:
            with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
                body = response.read(MAX_DOWNLOAD_BYTES + 1)
        except urllib.error.HTTPError as err:
            raise UserError(f"{option}: download of {source} failed: HTTP {err.code} {err.reason}; check the URL") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise UserError(f"{option}: could not download {source} ({reason}); check the URL or use a local file") from None
        if len(body) > MAX_DOWNLOAD_BYTES:
            raise UserError(f"{option}: {source} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB; download and shrink it first")
        return body
    if "://" in source:
        raise UserError(f"{option}: only http:// and https:// URLs are supported, not {source!r}")
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"{option}: file not found: {source}; give an existing image file or an http(s) URL")
    if not path.is_file():
        raise UserError(f"{option}: {source} is not a file; give an image file or an http(s) URL")
    return path.read_bytes()


def load_image(source: str, long_side: int | None = None, option: str = "image") -> Tensor:
    """Load ``source`` as ``[1, 3, H, W]`` in [0, 1], its long side resized to ``long_side``.

    ``option`` names the setting the source came from, so that errors say what to change.
    """
    data = _read_bytes(source, option)
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise UserError(
                f"{option}: {source} declares {image.width}x{image.height} pixels, more than "
                f"{MAX_PIXELS:,}; give a smaller image"
            )
        if long_side is not None and image.format == "JPEG":
            # Decode a large JPEG at reduced scale directly (at least 2x the target) to save memory.
            image.draft("RGB", (2 * long_side, 2 * long_side))
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{option}: {source} is not a readable image ({detail}); give a JPEG, PNG or other image file") from None
    if long_side is not None:
        scale = long_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return array.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0).float().div(255)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the mode; transparency is composited over white rather than dropped to black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert("RGB") clips instead of scaling, so scale to 8 bits first.
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    image.load()
    return image.convert("RGB")


def to_pil(image: Tensor) -> Image.Image:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [0, 1] to an 8-bit RGB PIL image."""
    image = image.detach().float().clamp(0, 1).squeeze(0).mul(255).round().to(torch.uint8)
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy())


def save_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Write ``image`` to ``path`` atomically: a temporary file in the same folder, then a rename,
    so an interrupted run never leaves a truncated image (and never half-overwrites an older one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            to_pil(image).save(handle, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
