"""Neural style transfer (Gatys, Ecker & Bethge 2015) as a PyTorch Lightning module."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), not here: `python -m nst_lightning` runs this file before
# __main__, which must install its signal handlers before torch and Lightning take seconds to import.
_EXPORTS = {
    "CoarseToFine": "nst_lightning.callbacks.coarse_to_fine",
    "DivergenceGuard": "nst_lightning.callbacks.divergence",
    "ImageLogger": "nst_lightning.callbacks.image_logger",
    "LossLogger": "nst_lightning.callbacks.loss_logger",
    "SaveGeneratedImage": "nst_lightning.callbacks.result",
    "StepCheckpoint": "nst_lightning.callbacks.checkpoint",
    "StyleTransferData": "nst_lightning.inputs.data",
    "UserError": "nst_lightning.utilities.errors",
    "StyleTransfer": "nst_lightning.model.module",
    "stylize": "nst_lightning.run.api",
    "stylize_video": "nst_lightning.video.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nst_lightning' has no attribute {name!r}")
