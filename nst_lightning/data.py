"""The inputs of a run: a content image and a style image, each a file, an http(s) URL or a
built-in example (``builtin:tubingen``, ``builtin:starry_night``, ``builtin:shipwreck``,
``builtin:the_scream``).

There is no dataset to iterate: style transfer optimises one image. The train loader therefore
yields step indices only, and the module reads the images from this datamodule once, in ``setup``.

Checkpoints record a fingerprint of the inputs (``state_dict``): a resume with other images or another
size would silently optimise a different problem from a state made for this one, so it is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import lightning.pytorch as pl
from jsonargparse.typing import PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader

from nst_lightning.errors import UserError
from nst_lightning.image_io import decode_image, read_source

# Four 2x poolings precede conv5_x: an image's short side must leave at least a 1x1 map there.
MIN_SHORT_SIDE = 16


class StyleTransferData(pl.LightningDataModule):
    def __init__(
        self,
        content: str = "builtin:tubingen",
        style: str = "builtin:starry_night",
        image_size: PositiveInt = 512,
        style_size: Optional[PositiveInt] = None,
    ) -> None:
        """
        Args:
            content: The photo whose structure is kept: a file path, an http(s) URL or ``builtin:NAME``.
            style: The painting whose style is transferred: a file path, an http(s) URL or ``builtin:NAME``.
            image_size: Long side of the generated image in pixels (the content image is resized to it).
            style_size: Long side of the style image in pixels; by default the same as ``image_size``, so
                brush strokes keep their size relative to the output.
        """
        super().__init__()
        self.save_hyperparameters()
        self.content = content
        self.style = style
        self.image_size = int(image_size)
        self.style_size = int(style_size) if style_size is not None else None
        self.content_image: Optional[Tensor] = None
        self.style_image: Optional[Tensor] = None
        self.content_sha256: Optional[str] = None
        self.style_sha256: Optional[str] = None

    def load(self) -> None:
        """Read, check and resize both images (once); raises ``UserError`` with a one-line fix.

        The CLI calls this before the Trainer creates any file, so bad input leaves nothing behind.
        """
        if self.content_image is not None:
            return
        content_bytes = read_source(self.content, "--data.content")
        style_bytes = read_source(self.style, "--data.style")
        content = decode_image(content_bytes, self.image_size, self.content, "--data.content")
        style = decode_image(style_bytes, self.style_size or self.image_size, self.style, "--data.style")
        for image, option in ((content, "--data.content"), (style, "--data.style")):
            if min(image.shape[-2:]) < MIN_SHORT_SIDE:
                raise UserError(
                    f"{option}: resized to {image.shape[-1]}x{image.shape[-2]} pixels, its short side is "
                    f"below VGG19's minimum of {MIN_SHORT_SIDE}; raise --data.image_size or use a less "
                    "elongated image"
                )
        self.content_image, self.style_image = content, style
        # Of the bytes, not of the decoded pixels: stable across Pillow versions, and the same for a
        # URL and a downloaded copy of it.
        self.content_sha256 = hashlib.sha256(content_bytes).hexdigest()
        self.style_sha256 = hashlib.sha256(style_bytes).hexdigest()

    # ---- the inputs' fingerprint in checkpoints --------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint's state depends on: both images' bytes and their sizes after resizing.
        Plain types only, so that checkpoints load with ``torch.load(weights_only=True)``."""
        self.load()
        return {
            "content": self.content,
            "content_sha256": self.content_sha256,
            "content_size": list(self.content_image.shape[-2:]),
            "style": self.style,
            "style_sha256": self.style_sha256,
            "style_size": list(self.style_image.shape[-2:]),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.check_resume(state_dict.get("fingerprint"))

    def check_resume(self, saved: Optional[dict[str, Any]], checkpoint: str = "the checkpoint") -> None:
        """Refuse to resume from a checkpoint made with other inputs; ``saved`` is its fingerprint
        (``None`` for checkpoints older than fingerprints: only the image size is checked then)."""
        if not saved:
            return
        now = self.fingerprint()
        new_run = f"or start a new run from the checkpoint's image with --model.init_image {checkpoint}"
        for name in ("content", "style"):
            if saved.get(f"{name}_sha256") != now[f"{name}_sha256"]:
                raise UserError(
                    f"--data.{name} {now[name]} is not the image {checkpoint} was made with "
                    f"({saved.get(name)}, sha256 {str(saved.get(f'{name}_sha256'))[:12]}...); "
                    f"resume with that image, {new_run}"
                )
        style_option = "--data.style_size" if self.style_size is not None else "--data.image_size"
        for name, option in (("content", "--data.image_size"), ("style", style_option)):
            if list(saved.get(f"{name}_size", [])) != now[f"{name}_size"]:
                (h, w), (saved_h, saved_w) = now[f"{name}_size"], saved[f"{name}_size"]
                raise UserError(
                    f"{option} makes the {name} image {w}x{h} but {checkpoint} was made at "
                    f"{saved_w}x{saved_h}; resume with the same {option}, {new_run} (it is resized)"
                )

    def setup(self, stage: str) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        # One "batch" per optimisation step; an epoch is the whole run, so max_steps ends it.
        # On resume the loader restarts, but the Trainer stops at max_steps all the same.
        steps = self.trainer.max_steps if self.trainer is not None else -1
        if steps is None or steps < 0:
            raise UserError("set --trainer.max_steps: it is the number of optimisation steps")
        return DataLoader(range(steps), batch_size=None)
