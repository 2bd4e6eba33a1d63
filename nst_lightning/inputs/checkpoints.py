"""Reading a checkpoint this program wrote: for a resume, and as the image a new run starts from.

Loading defaults to ``torch.load(weights_only=True)``: a checkpoint is data (tensors, numbers,
strings), and unpickling one must never run code from it. This project's own checkpoints contain
nothing else; a file that needs more is refused with a message, not opened. A missing, damaged or
foreign file is one ``UserError`` naming the option it came from.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nst_lightning.inputs.images import load_image
from nst_lightning.utilities.errors import UserError, param


def load_checkpoint_file(path: str | os.PathLike, weights_only: bool = True, option: str = param("ckpt_path")) -> dict[str, Any]:
    """``torch.load`` a checkpoint to CPU (``weights_only`` unless asked otherwise); ``UserError`` naming
    ``option`` if it is missing, not a checkpoint, damaged or needs code to load."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        raise checkpoint_load_error(path, err, option) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{option}: {path} is not a Lightning checkpoint; give a .ckpt file this program wrote")
    return checkpoint


def checkpoint_load_error(path: str | os.PathLike, err: Exception, option: str = param("ckpt_path")) -> UserError:
    if isinstance(err, UserError):
        return err
    if isinstance(err, FileNotFoundError):
        return UserError(f"{option}: checkpoint not found: {path}; give an existing .ckpt file")
    if isinstance(err, IsADirectoryError):
        return UserError(f"{option}: {path} is a directory; give a .ckpt file")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    globals_ = [line for line in lines if "GLOBAL" in line]
    if isinstance(err, pickle.UnpicklingError) and globals_:
        # torch's message is a page long; its one useful line names what the file wanted to import.
        # No "--weights_only false" escape hatch is offered: LightningCLI itself reads --ckpt_path
        # with weights_only=True whatever that option says, so the CLI never executes a checkpoint.
        return UserError(
            f"{option}: {path} contains Python objects that loading would have to execute "
            f"({globals_[0][:160]}); refused: give a checkpoint this program wrote"
        )
    if isinstance(err, pickle.UnpicklingError):
        detail = "not a torch file"
    else:
        detail = f"{type(err).__name__}: {lines[0][:160]}" if lines else type(err).__name__
    return UserError(
        f"{option}: {path} is damaged, truncated or not a checkpoint ({detail}); "
        "give a complete .ckpt file this program wrote"
    )



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
