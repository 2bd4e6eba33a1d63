"""How checkpoints are written and read: atomically, and without executing anything on load.

Lightning 2.6's ``TorchCheckpointIO`` writes through an fsspec "transaction" whose temporary file is
made by ``tempfile.mkstemp()`` in the system temp directory and then ``shutil.move``d into place.
When ``/tmp`` and the run directory are different filesystems that move is a copy, and a process
killed during the copy leaves a truncated ``last.ckpt`` (and a stray file in ``/tmp``). Here the
temporary file is in the checkpoint's own directory, so the final rename is atomic.

Loading defaults to ``torch.load(weights_only=True)`` (``inputs/checkpoints.py``, which reads them
for a resume check and as a start image too).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH

from nst_lightning.inputs.checkpoints import checkpoint_load_error
from nst_lightning.utilities.files import atomic_write


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


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a checkpoint: nearly all of its size."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0
