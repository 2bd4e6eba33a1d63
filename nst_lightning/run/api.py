"""``stylize``: style transfer in one call, for notebooks and scripts.

    from nst_lightning import stylize
    image = stylize("photo.jpg", "painting.jpg", image_size=256, max_steps=200, style_weight=20)
    image.save("result.png")

It builds the same ``StyleTransfer``, ``StyleTransferData`` and ``Trainer`` the CLI does, and runs
them without logs or checkpoints unless ``log_dir`` asks for them. Errors are ``UserError``s that
name this function's arguments.
"""

from __future__ import annotations

import inspect
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torch import Tensor

from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.model.module import StyleTransfer
from nst_lightning.run.callbacks.checkpoint import CHECKPOINT_DEFAULTS, StepCheckpoint
from nst_lightning.run.callbacks.image_logger import ImageLogger
from nst_lightning.run.callbacks.result import SaveGeneratedImage
from nst_lightning.run.output import to_pil
from nst_lightning.run.quiet import EXPECTED_WARNINGS, NoAdvertisements
from nst_lightning.run.run_lock import RunLock

ImageLike = Union[str, Path, Image.Image, Tensor]


def _options_of(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def stylize(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    *,
    max_steps: int = 500,
    seed: Optional[int] = 0,
    accelerator: str = "auto",
    precision: str = "32",
    log_dir: Optional[Union[str, Path]] = None,
    progress_bar: bool = True,
    **options: Any,
) -> Image.Image:
    """The photo ``content`` in the style of ``style``, as an RGB PIL image.

    Args:
        content: The photo: a file path, an http(s) URL, ``builtin:NAME``, a PIL image or an image
            tensor (``[3, H, W]`` or ``[1, 3, H, W]``, values in [0, 1]).
        style: The painting, in any of those forms, or a list of them to blend.
        max_steps: Optimisation steps (loss evaluations).
        seed: Seeds the noise of ``init="noise"`` (the caller's own random state is left as it was);
            None: unseeded.
        accelerator: Lightning's ``accelerator``: ``auto``, ``cpu``, ``gpu``...
        precision: Lightning's ``precision``: ``32``, ``bf16-mixed``, ``16-mixed``.
        log_dir: If given, the run is also kept there as the CLI keeps it: TensorBoard events,
            checkpoints (``checkpoints/last.ckpt``) and ``generated.png``.
        progress_bar: Show Lightning's progress bar.
        **options: Any option of ``StyleTransfer`` (``style_weight``, ``optimizer``, ``lr``,
            ``preserve_colors``, ``stage_steps``, ...) or ``StyleTransferData`` (``image_size``,
            ``style_weights``, ``style_scale``), by the names ``--model.*``/``--data.*`` use.
    """
    model_names, data_names = _options_of(StyleTransfer), _options_of(StyleTransferData) - {"content", "style"}
    unknown = sorted(set(options) - model_names - data_names)
    if unknown:
        raise TypeError(
            f"stylize() got unexpected keyword argument(s) {', '.join(unknown)}; options are "
            f"{', '.join(sorted(model_names | data_names))}, max_steps, seed, accelerator, precision, log_dir"
        )
    # The caller's random state is left as it was; within, seeded as the CLI's seed_everything seeds
    # a run (before the model is built), so the same options give the CLI's result.
    with tempfile.TemporaryDirectory(prefix="nst_stylize_") as inputs, torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        data = StyleTransferData(
            content=_as_source(content, Path(inputs) / "content.png"),
            style=[_as_source(s, Path(inputs) / f"style{k}.png") for k, s in enumerate(styles)],
            **{name: value for name, value in options.items() if name in data_names},
        )
        model = StyleTransfer(**{name: value for name, value in options.items() if name in model_names})
        keep = log_dir is not None
        trainer = pl.Trainer(
            max_steps=max_steps,
            accelerator=accelerator,
            devices=1,
            precision=precision,
            logger=TensorBoardLogger(str(log_dir), name="", version="", default_hp_metric=False) if keep else False,
            # RunLock first: no other callback writes before the run holds its directory.
            callbacks=[RunLock(log_dir), StepCheckpoint(**CHECKPOINT_DEFAULTS), ImageLogger(), SaveGeneratedImage()] if keep else [],
            enable_checkpointing=keep,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            log_every_n_steps=max(1, min(10, max_steps)),
        )
        NoAdvertisements.install()
        with warnings.catch_warnings():
            for message in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(model, datamodule=data)
        return to_pil(model.result())


def _as_source(image: ImageLike, spill: Path) -> str:
    """A source ``StyleTransferData`` reads: strings as they are; an in-memory image written as a
    lossless PNG to ``spill`` (the datamodule reads, hashes and resizes sources from their bytes)."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, Tensor):
        image = to_pil(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"stylize() takes a path, URL, PIL image or tensor as an image, not {type(image).__name__}")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    spill.write_bytes(buffer.getvalue())
    return str(spill)
