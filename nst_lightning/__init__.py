"""Neural style transfer (Gatys, Ecker & Bethge 2015) as a PyTorch Lightning module."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), not here: `python -m nst_lightning` runs this file before
# __main__, which must install its signal handlers before torch and Lightning take seconds to import.
_EXPORTS = {
    "CoarseToFine": "nst_lightning.multiscale",
    "DivergenceGuard": "nst_lightning.callbacks",
    "ImageLogger": "nst_lightning.callbacks",
    "LossLogger": "nst_lightning.callbacks",
    "SaveGeneratedImage": "nst_lightning.callbacks",
    "StepCheckpoint": "nst_lightning.callbacks",
    "StyleTransferData": "nst_lightning.data",
    "UserError": "nst_lightning.errors",
    "StyleTransfer": "nst_lightning.module",
    "stylize": "nst_lightning.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nst_lightning' has no attribute {name!r}")
