"""How checkpoints are written and read: atomically, and without executing anything on load.

Lightning 2.6's ``TorchCheckpointIO`` writes through an fsspec "transaction" whose temporary file is
made by ``tempfile.mkstemp()`` in the system temp directory and then ``shutil.move``d into place.
When ``/tmp`` and the run directory are different filesystems that move is a copy, and a process
killed during the copy leaves a truncated ``last.ckpt`` (and a stray file in ``/tmp``). Here the
temporary file is in the checkpoint's own directory, so the final rename is atomic.

Loading defaults to ``torch.load(weights_only=True)``: a checkpoint is data (tensors, numbers,
strings), and unpickling one must never run code from it. This project's own checkpoints contain
nothing else; a file that needs more is refused with a message, not opened.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Optional

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH

from nst_lightning.errors import UserError, param
from nst_lightning.files import atomic_write


class SafeCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic local writes and ``weights_only`` loading by default."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's way
        atomic_write(path, lambda handle: torch.save(checkpoint, handle), needed=_tensor_bytes(checkpoint))

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Optional[Callable] = lambda storage, loc: storage,
        weights_only: Optional[bool] = None,
    ) -> dict[str, Any]:
        weights_only = True if weights_only is None else weights_only
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except Exception as err:
            raise checkpoint_load_error(path, err) from None


def load_checkpoint_file(path: _PATH, weights_only: bool = True, option: str = param("ckpt_path")) -> dict[str, Any]:
    """``torch.load`` a checkpoint to CPU (``weights_only`` unless asked otherwise); ``UserError`` naming
    ``option`` if it is missing, not a checkpoint, damaged or needs code to load."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:
        raise checkpoint_load_error(path, err, option) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{option}: {path} is not a Lightning checkpoint; give a .ckpt file this program wrote")
    return checkpoint


def checkpoint_load_error(path: _PATH, err: Exception, option: str = param("ckpt_path")) -> UserError:
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


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a checkpoint: nearly all of its size."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0
