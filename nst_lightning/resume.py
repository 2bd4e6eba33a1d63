"""Continuing from a checkpoint: whether it may continue this run, and starting a new run from its image.

A checkpoint holds the image and the optimizer state of one optimisation problem. Resuming it with
other inputs, another stage schedule or the other optimizer would silently optimise a different
problem from a state made for this one, so ``check_resume`` refuses, naming the option and the way
on: a *new* run that starts from the checkpoint's image (``load_start_image``).

The same checks run inside ``Trainer.fit(ckpt_path=...)`` (the datamodule's ``load_state_dict``,
``CoarseToFine.on_load_checkpoint``, ``StyleTransfer.on_load_checkpoint``); the CLI runs them once
more before the Trainer writes anything, so a refused resume leaves the run directory untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from nst_lightning.checkpoint_io import load_checkpoint_file
from nst_lightning.errors import UserError, param
from nst_lightning.image_io import load_image
from nst_lightning.multiscale import check_same_schedule


def new_run_hint(name: str) -> str:
    return f"or start a new run from its image with {param('model.init')} image {param('model.init_image')} {name}"


def check_same_optimizer(checkpoint: Mapping[str, Any], optimizer: str, name: str = "the checkpoint") -> None:
    saved = checkpoint.get("hyper_parameters", {}).get("optimizer")
    if saved is not None and saved != optimizer:
        raise UserError(
            f"{param('model.optimizer')} is {optimizer} but {name} was made with {saved}, whose state "
            f"{optimizer} cannot continue; resume with {param('model.optimizer')} {saved}, {new_run_hint(name)}"
        )


def check_resume(checkpoint: Mapping[str, Any], model: Any, datamodule: Any, name: str = "the checkpoint") -> None:
    """Refuse to resume from ``checkpoint`` if it was made for other inputs (see
    ``StyleTransferData.check_resume``), another stage schedule or the other optimizer."""
    if datamodule is not None and hasattr(datamodule, "check_resume"):
        datamodule.check_resume(checkpoint.get(type(datamodule).__qualname__, {}).get("fingerprint"), name)
    check_same_schedule(checkpoint, model.hparams.stage_steps or [], name)
    check_same_optimizer(checkpoint, model.hparams.optimizer, name)


# Options that change how a step is computed, not what is optimised (the same result up to rounding):
# a resume may change them, e.g. to tile a run that no longer fits.
HOW_NOT_WHAT = ("memory_format", "activation_checkpointing", "tile_size", "max_memory_gb", "check_memory")


def changed_options(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """One line per model option whose value ``asked`` differs from the checkpoint's ``saved``
    hyperparameters, which a resume uses (LightningCLI restores them over the config and flags),
    except those in ``HOW_NOT_WHAT``."""
    return [
        f"{param('model.' + key)} is {asked[key]!r} here but the checkpoint was made with {saved[key]!r}; "
        f"the resumed run keeps {saved[key]!r}"
        for key in sorted(set(saved) & set(asked))
        if not key.startswith("_") and key not in HOW_NOT_WHAT and _comparable(saved[key]) != _comparable(asked[key])
    ]


def _comparable(value: Any) -> Any:
    """Lists and tuples alike (YAML gives lists, defaults may be tuples); ints and floats alike."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def load_start_image(source: str, option: str = param("model.init_image")) -> Tensor:
    """``init_image``: an image (file, URL, ``builtin:``), or the image of a ``.ckpt`` this program
    wrote (loaded with ``weights_only``): its averaged iterate when it has one (that is its output),
    else its image, with non-finite pixels replaced."""
    if Path(source).suffix != ".ckpt":
        return load_image(source, option=option)
    checkpoint = load_checkpoint_file(source, option=option)
    state = checkpoint["state_dict"]
    image = state.get("image")
    if not isinstance(image, Tensor) or image.dim() != 4 or tuple(image.shape[:2]) != (1, 3):
        raise UserError(f"{option}: {source} holds no image of this program; give a .ckpt it wrote, or an image")
    decay = checkpoint.get("hyper_parameters", {}).get("ema_decay")
    count = state.get("average.count")
    if decay and isinstance(count, Tensor) and count.item() > 0 and "average.value" in state:
        image = state["average.value"] / (1 - decay ** count.item())
    # L-BFGS images are unclamped, and a diverged one may hold NaN: start only from valid pixels.
    return torch.nan_to_num(image.detach().float(), nan=0.5, posinf=1.0, neginf=0.0).clamp(0, 1)
