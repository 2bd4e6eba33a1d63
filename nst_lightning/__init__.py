"""Neural style transfer (Gatys, Ecker & Bethge 2015) as a PyTorch Lightning module."""

from nst_lightning.callbacks import ImageLogger, SaveGeneratedImage, StepCheckpoint
from nst_lightning.data import StyleTransferData
from nst_lightning.errors import UserError
from nst_lightning.module import StyleTransfer

__all__ = ["ImageLogger", "SaveGeneratedImage", "StepCheckpoint", "StyleTransfer", "StyleTransferData", "UserError"]
