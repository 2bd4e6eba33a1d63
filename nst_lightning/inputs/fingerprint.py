"""The inputs' fingerprint in checkpoints: what a checkpoint's state depends on, and the refusal to
resume one made for other inputs.

A resume with other images, other blend weights, other regions or another size would silently
optimise a different problem from a state made for this one, so ``check_resume`` refuses, naming the
option and the way on. Of the bytes, not of the decoded pixels: stable across Pillow versions, and
the same for a URL and a downloaded copy of it. Plain types only, so that checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Optional

from nst_lightning.utilities.errors import UserError, new_run_hint, param


def fingerprint(data: Any) -> dict[str, Any]:
    """What a checkpoint's state depends on: the images' bytes, the blend weights and the final
    sizes (a multi-scale stage's size follows from these and the schedule, which the module
    checks), of a loaded ``StyleTransferData``."""
    photos = [_sha256(data.source_bytes(c, param("data.content"))) for c in data.contents]
    return {
        "content": data.content,
        # Of the bytes, not of the decoded pixels: stable across Pillow versions, and the same for
        # a URL and a downloaded copy of it.
        "content_sha256": photos[0] if len(photos) == 1 else photos,
        "size": list(data.size(data.image_size)),
        "styles": list(data.styles),
        "styles_sha256": [_sha256(data.source_bytes(s, param("data.style"))) for s in data.styles],
        "style_weights": list(data.style_weights),
        "style_scale": data.style_scale,
        **({"regions": _regions_fingerprint(data)} if data.regions is not None else {}),
    }


def _regions_fingerprint(data: Any) -> list[dict[str, Any]]:
    option = param("data.regions")
    return [
        {
            "mask_sha256": _sha256(data.source_bytes(region.mask, option)),
            "color": region.color,
            "invert": region.invert,
            "styles": region.styles,
            "style_weights": region.style_weights,
            "style_mask_sha256": None if region.style_mask is None else _sha256(data.source_bytes(region.style_mask, option)),
            "weight": region.weight,
        }
        for region in data.regions
    ]


def check_resume(data: Any, saved: Optional[dict[str, Any]], checkpoint: str = "the checkpoint") -> None:
    """Refuse to resume from a checkpoint made with other inputs; ``saved`` is its fingerprint
    (``None`` for checkpoints older than fingerprints: the module still checks the image size)."""
    if not saved or "styles_sha256" not in saved:
        return
    now = data.fingerprint()
    new_run = new_run_hint(checkpoint)
    if saved["content_sha256"] != now["content_sha256"]:
        raise UserError(
            f"{param('data.content')} {now['content']} is not the image {checkpoint} was made with "
            f"({saved['content']}, sha256 {saved['content_sha256'][:12]}...); resume with that image, {new_run}"
        )
    if saved["styles_sha256"] != now["styles_sha256"]:
        raise UserError(
            f"{param('data.style')} {now['styles']} is not what {checkpoint} was made with ({saved['styles']}); "
            f"resume with the same style images in the same order, {new_run}"
        )
    if len(saved["style_weights"]) != len(now["style_weights"]) or not all(
        math.isclose(a, b, rel_tol=1e-6) for a, b in zip(saved["style_weights"], now["style_weights"])
    ):
        weights = ", ".join(f"{w:.3g}" for w in saved["style_weights"])
        raise UserError(
            f"{param('data.style_weights')} differ from those {checkpoint} was made with ({weights} after "
            f"normalising); resume with the same weights, {new_run}"
        )
    if saved.get("regions") != now.get("regions"):
        raise UserError(
            f"{param('data.regions')} (their masks, styles or weights) differ from those {checkpoint} was made with; "
            f"resume with the same regions, {new_run}"
        )
    if list(saved["size"]) != now["size"] or not math.isclose(saved["style_scale"], now["style_scale"]):
        (h, w), (saved_h, saved_w) = now["size"], saved["size"]
        raise UserError(
            f"{param('data.image_size')} {data.image_size} and {param('data.style_scale')} {data.style_scale:g} make the result "
            f"{w}x{h} but {checkpoint} was made for {saved_w}x{saved_h} with {param('data.style_scale')} "
            f"{saved['style_scale']:g}; resume with the same sizes, {new_run} (it is resized)"
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
