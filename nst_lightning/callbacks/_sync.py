"""How often the callbacks that read the loss to the host do so (``--model.sync_every``)."""

from __future__ import annotations

from typing import Optional

import torch

# How often the loss is read to the host by default (``sync_every``): every step on a CPU, where a
# read costs nothing; every 50 steps on a GPU, where each read waits for the queued kernels.
DEFAULT_SYNC_EVERY = {"cpu": 1, "gpu": 50}


def sync_interval(sync_every: Optional[int], device: torch.device) -> int:
    """``sync_every``, or its default on ``device``: 1 on a CPU, 50 on a GPU (``DEFAULT_SYNC_EVERY``)."""
    return sync_every or DEFAULT_SYNC_EVERY["cpu" if device.type == "cpu" else "gpu"]
