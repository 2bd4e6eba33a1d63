"""The inputs' fingerprint in checkpoints: what a checkpoint's state depends on, and the refusal to
resume one made for other inputs.

A resume with other images, other blend weights, other regions or another size would silently
optimise a different problem from a state made for this one, so ``check_same_inputs`` refuses, naming the
option and the way on. Of the bytes, not of the decoded pixels: stable across Pillow versions, and
the same for a URL and a downloaded copy of it. Plain types only, so that checkpoints load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Optional

from nst_lightning.inputs.sources import redact_url
from nst_lightning.utilities.errors import UserError, new_run_hint, param


def fingerprint(data: Any) -> dict[str, Any]:
    """What a checkpoint's state depends on: the images' bytes, the blend weights and the final
    sizes (a multi-scale stage's size follows from these and the schedule, which the module
    checks), of a loaded ``StyleTransferData``."""
    photos = [_sha256(data.source_bytes(c, param("data.content"))) for c in data.contents]
    return {
        # The names for messages, without a URL's password; what is compared is the bytes' hashes.
        "content": redact_url(data.content) if isinstance(data.content, str) else [redact_url(c) for c in data.content],
        # Of the bytes, not of the decoded pixels: stable across Pillow versions, and the same for
        # a URL and a downloaded copy of it.
        "content_sha256": photos[0] if len(photos) == 1 else photos,
        "size": list(data.size(data.image_size)),
        "styles": [redact_url(s) for s in data.styles],
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


def check_same_inputs(data: Any, saved: Optional[dict[str, Any]], checkpoint: str = "the checkpoint") -> None:
    """Refuse to resume from a checkpoint made with other inputs; ``saved`` is its fingerprint
    (``None`` for checkpoints older than fingerprints: the module still checks the image size)."""
    if not saved or "styles_sha256" not in saved:
        return
    _check_saved(saved, checkpoint)
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


# What each entry of a saved fingerprint is (the checks below index them all): a file's is untrusted.
_SAVED_TYPES = {
    "content": (str, list),
    "content_sha256": (str, list),
    "size": (list,),
    "styles": (list,),
    "styles_sha256": (list,),
    "style_weights": (list,),
    "style_scale": (int, float),
}


def _check_saved(saved: Any, checkpoint: str) -> None:
    def text(value: Any) -> bool:
        return isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)

    good = isinstance(saved, dict) and all(isinstance(saved.get(k), types) for k, types in _SAVED_TYPES.items())
    good = good and all(text(saved[k]) for k in ("content", "content_sha256", "styles", "styles_sha256"))
    good = good and len(saved["size"]) == 2 and all(type(n) is int for n in saved["size"])
    good = good and all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in saved["style_weights"])
    good = good and isinstance(saved.get("regions", []), list) and not isinstance(saved["style_scale"], bool)
    if not good:
        raise UserError(
            f"{param('ckpt_path')}: {checkpoint} is not a checkpoint this program can use (its fingerprint of the "
            "inputs is not one this program writes); give a .ckpt file it wrote"
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
