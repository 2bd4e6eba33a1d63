"""Reading a checkpoint this program wrote: for a resume, and as the image a new run starts from.

Every checkpoint is untrusted. Loading is ``torch.load(weights_only=True)``: a checkpoint is data
(tensors, numbers, strings), and unpickling one must never run code from it; a file that needs more
is refused with a message, not opened. It is also memory-mapped (``mmap=True``), so reading a
tensor's shape, dtype and strides touches none of its bytes, and ``check_structure`` checks every
entry's type, and that no tensor declares more elements than its data holds (a 120 KB file can
declare a 10.8 GB image with stride 0), before anything is allocated from it. What must match the
run (the image's shape for its stage, the optimizer state) is ``model/checkpoint_checks.py``'s. A
missing, damaged or foreign file is one ``UserError`` naming the option it came from.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from packaging.version import InvalidVersion, Version
from torch import Tensor

from nst_lightning.inputs.images import MAX_PIXELS, header_size, load_image
from nst_lightning.inputs.sources import read_source, redact_url
from nst_lightning.utilities.errors import UserError, param

# What loading a start image may take per pixel: the float32 image kept for the run, and one working
# copy (a decoded file's 8-bit pixels, or a checkpoint's image made finite and clamped).
START_IMAGE_BYTES_PER_PIXEL = 2 * 3 * 4


class CheckpointProblem(Exception):
    """What is wrong with a checkpoint's contents, as a clause: ``its image is int64, not float32``."""


def not_ours(name: str, problem: CheckpointProblem, option: str = param("ckpt_path"), hint: str = "") -> UserError:
    return UserError(f"{option}: {name} is not a checkpoint this program can use ({problem}); {hint or 'give a .ckpt file it wrote'}")


def load_checkpoint_file(path: str | os.PathLike, weights_only: bool = True, option: str = param("ckpt_path")) -> dict[str, Any]:
    """``torch.load`` a checkpoint to CPU, memory-mapped (``weights_only`` unless asked otherwise), and
    ``check_structure`` it; ``UserError`` naming ``option`` if it is missing, not a checkpoint,
    damaged, needs code to load, or holds what this program never writes."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except Exception as err:
        raise checkpoint_load_error(path, err, option) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{option}: {path} is not a Lightning checkpoint; give a .ckpt file this program wrote")
    try:
        check_structure(checkpoint)
    except CheckpointProblem as problem:
        raise not_ours(str(path), problem, option) from None
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


# ---- the structure, whatever the run -------------------------------------------------------------


def kind(value: Any) -> str:
    return _a(type(value))


def _a(cls: type) -> str:
    name = cls.__name__
    return "None" if cls is type(None) else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "a scalar"


def check_type(value: Any, types: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is one of ``types`` (a bool is no int here), else ``CheckpointProblem``."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(map(_a, types))
        raise CheckpointProblem(f"{what} is {kind(value)}, not {names}")
    return value


def check_count(value: Any, what: str, minimum: int = 0) -> int:
    if check_type(value, int, what) < minimum:
        raise CheckpointProblem(f"{what} is {value}, below {minimum}")
    return value


def check_number(value: Any, what: str) -> float:
    """A finite int, float or one-element tensor."""
    if isinstance(value, Tensor):
        check_tensor(value, what, shape=(), dtype=None)
        value = value.item()
    if not math.isfinite(check_type(value, (int, float), what)):
        raise CheckpointProblem(f"{what} is {value}, not a finite number")
    return value


def check_tensor(value: Any, what: str, shape: Optional[Sequence[int]] = None, dtype: Optional[torch.dtype] = torch.float32) -> Tensor:
    """A tensor of ``dtype`` and ``shape`` (None: any) whose data holds every element it declares."""
    tensor = check_type(value, Tensor, what)
    if dtype is not None and tensor.dtype != dtype:
        raise CheckpointProblem(f"{what} is {str(tensor.dtype).removeprefix('torch.')}, not {str(dtype).removeprefix('torch.')}")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise CheckpointProblem(f"{what} is {shape_text(tensor.shape)}, not {shape_text(shape)}")
    check_storage(tensor, what)
    return tensor


def check_storage(tensor: Tensor, what: str) -> None:
    """No more elements than the data holds, and none outside it: a tensor of stride 0 can declare
    any size over a single number, and ``empty_like`` or any operation on it would allocate that."""
    if tensor.numel() == 0:
        return
    size, storage = tensor.element_size(), tensor.untyped_storage().nbytes()
    extent = tensor.storage_offset() + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride())) + 1
    if min(tensor.stride(), default=0) < 0 or tensor.numel() * size > storage or extent * size > storage:
        raise CheckpointProblem(f"{what} declares {shape_text(tensor.shape)} ({tensor.numel() * size:,} bytes) over {storage:,} bytes of data")


def tensors(value: Any, where: str) -> list[tuple[str, Tensor]]:
    """Every tensor in nested dicts, lists and tuples, with where it is (a shared or cyclic container
    is visited once)."""
    found, todo, seen = [], [(where, value)], set()
    while todo:
        path, item = todo.pop()
        if isinstance(item, Tensor):
            found.append((path, item))
        elif isinstance(item, (dict, list, tuple)) and id(item) not in seen:
            seen.add(id(item))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            todo.extend((f"{path}[{key!r}]", child) for key, child in pairs)
    return found


# Lightning's own entries and this program's (``CoarseToFine``): the type each must have when present.
TOP_LEVEL_TYPES = {
    "state_dict": dict,
    "hyper_parameters": dict,
    "datamodule_hyper_parameters": dict,
    "loops": dict,
    "callbacks": dict,
    "optimizer_states": list,
    "lr_schedulers": list,
    "pytorch-lightning_version": str,
    "hparams_name": (str, type(None)),
    "datamodule_hparams_name": (str, type(None)),
    "nst_stage_steps": (list, type(None)),
}


def check_structure(checkpoint: dict[str, Any]) -> None:
    """What every checkpoint of this program is, whatever the run: the types of Lightning's entries
    and ours (LightningCLI reads ``hyper_parameters`` with ``.pop``, the Trainer indexes the rest),
    a state dict of tensors, and no tensor anywhere declaring more than its data holds."""
    for key, types in TOP_LEVEL_TYPES.items():
        if key in checkpoint:
            check_type(checkpoint[key], types, f"its {key}")
    for key in ("epoch", "global_step", "nst_stage"):
        if key in checkpoint:
            check_count(checkpoint[key], f"its {key}")
    if "pytorch-lightning_version" in checkpoint:
        try:
            Version(checkpoint["pytorch-lightning_version"])
        except InvalidVersion:
            raise CheckpointProblem(f"its pytorch-lightning_version {checkpoint['pytorch-lightning_version'][:40]!r} is no version") from None
    elif "callbacks" in checkpoint:  # Lightning reads it to restore the callbacks
        raise CheckpointProblem("it has callback states but no pytorch-lightning_version")
    for key in ("hyper_parameters", "datamodule_hyper_parameters", "state_dict", "callbacks"):
        for name in checkpoint.get(key, {}):
            check_type(name, str, f"a key of its {key}")
    for name, value in checkpoint["state_dict"].items():
        check_tensor(value, f"its state_dict[{name!r}]", dtype=None)
    for index, state in enumerate(checkpoint.get("optimizer_states", [])):
        check_type(state, dict, f"its optimizer_states[{index}]")
        check_type(state.get("state"), dict, f"its optimizer_states[{index}]['state']")
        for group in check_type(state.get("param_groups"), list, f"its optimizer_states[{index}]['param_groups']"):
            check_type(group, dict, f"a param_group of its optimizer_states[{index}]")
    for step in checkpoint.get("nst_stage_steps") or []:
        check_count(step, "a stage of its nst_stage_steps", minimum=1)
    for where, tensor in tensors(checkpoint, "its"):
        check_storage(tensor, where)


# ---- a checkpoint's image as the start of a new run ----------------------------------------------


def check_image(value: Any, what: str, count: Optional[int] = None, size: Optional[tuple[int, int]] = None) -> Tensor:
    """The image of a checkpoint: float32 ``[K, 3, H, W]``, ``K == count`` and ``(H, W) == size`` when
    given, and at most ``MAX_PIXELS`` per image (the limit of every image input) in any case."""
    if value is None:
        raise CheckpointProblem("it holds no image")
    image = check_type(value, Tensor, what)
    if image.dim() != 4 or image.shape[1] != 3 or 0 in image.shape:
        raise CheckpointProblem(f"{what} is {shape_text(image.shape)}, not K x 3 x H x W")
    if count is not None and image.shape[0] != count:
        raise CheckpointProblem(f"{what} holds {image.shape[0]} images, not {count}")
    if size is not None and tuple(image.shape[-2:]) != tuple(size):
        raise CheckpointProblem(f"{what} is {image.shape[-1]}x{image.shape[-2]}, not {size[1]}x{size[0]}")
    if image.shape[-1] * image.shape[-2] > MAX_PIXELS:
        raise CheckpointProblem(f"{what} is {image.shape[-1]}x{image.shape[-2]}, over the limit of {MAX_PIXELS:,} pixels")
    return check_tensor(image, what)


def start_image_size(source: str, option: str = param("model.init_image")) -> tuple[int, int]:
    """``(height, width)`` of ``init_image``, read without decoding or allocating it."""
    if Path(source).suffix != ".ckpt":
        return header_size(read_source(source, option), None, source, option)
    return tuple(_checkpoint_image(source, option)[0].shape[-2:])


def load_start_image(source: str, option: str = param("model.init_image"), max_bytes: Optional[float] = None) -> Tensor:
    """``init_image``: an image (file, URL, ``builtin:``), or the image of a ``.ckpt`` this program
    wrote (loaded with ``weights_only``): its averaged iterate when it has one (that is its output),
    else its image, with non-finite pixels replaced. ``max_bytes``: the memory loading may take
    (``START_IMAGE_BYTES_PER_PIXEL``); a larger image is refused before it is decoded or allocated."""
    height, width = start_image_size(source, option)
    need = height * width * START_IMAGE_BYTES_PER_PIXEL
    if max_bytes is not None and need > max_bytes:
        raise UserError(
            f"{option}: {redact_url(source)} is {width}x{height}: loading it takes about {need / 1e9:.1f} GB but "
            f"{max_bytes / 1e9:.1f} GB is available; give a smaller image (it is resized to the photo's size), "
            f"or {param('model.check_memory')} false to try anyway"
        )
    if Path(source).suffix != ".ckpt":
        return load_image(source, option=option)
    image, scale = _checkpoint_image(source, option)
    # One copy, made finite and clamped in place: L-BFGS images are unclamped, and a diverged one
    # may hold NaN; start only from valid pixels.
    image = image.to(torch.float32, copy=True).mul_(scale)
    return torch.nan_to_num_(image, nan=0.5, posinf=1.0, neginf=0.0).clamp_(0, 1)


def _checkpoint_image(source: str, option: str) -> tuple[Tensor, float]:
    """A checkpoint's output, checked and not yet read: its average with that average's scale
    (``1 / (1 - decay ** count)``), else its image and 1."""
    checkpoint = load_checkpoint_file(source, option=option)
    state = checkpoint["state_dict"]
    try:
        image = check_image(state.get("image"), "its image", count=1)
        decay = checkpoint.get("hyper_parameters", {}).get("ema_decay")
        if not decay or "average.value" not in state or "average.count" not in state:
            return image, 1.0
        decay, count = check_number(decay, "its ema_decay"), check_number(state["average.count"], "its average.count")
        if not 0 < decay < 1 or count < 0:
            raise CheckpointProblem(f"its ema_decay {decay:g} or average.count {count:g} is out of range")
        if count == 0:
            return image, 1.0
        return check_tensor(state["average.value"], "its average.value", shape=image.shape), 1 / (1 - decay**count)
    except CheckpointProblem as problem:
        raise not_ours(source, problem, option, "give a .ckpt this program wrote, or an image") from None
