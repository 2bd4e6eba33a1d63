"""The clip's TensorBoard log, ``OUT/tensorboard``: per frame its final losses (content, style,
temporal), the fraction of its pixels the flow was trusted at and its seconds, against the frame's
number; every ``preview_every`` frames (and each shot's first) the result and its consistency mask
(white where the temporal loss holds the frame to the previous one). Each frame's own run keeps its
per-step curves in ``OUT/runs/frame_NNNNNN``.

    tensorboard --logdir OUT
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch


class ClipLog:
    def __init__(self, root: Path, preview_every: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # One event file per process (a Ray worker writes its own shot's), the same directory.
        self.writer = SummaryWriter(log_dir=str(root / "tensorboard"))
        self.preview_every = preview_every

    def frame(self, n: int, record: dict[str, Any], result: Path, mask: Optional[Path], first_of_shot: bool) -> None:
        for name in ("content_loss", "style_loss", "temporal_loss", "trusted_fraction", "seconds"):
            if record.get(name) is not None:
                self.writer.add_scalar(f"frame/{name}", record[name], n)
        if first_of_shot or (self.preview_every and n % self.preview_every == 0):
            from PIL import Image

            with Image.open(result) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image("frame/result", pixels, n, dataformats="HWC")
            if mask is not None and mask.is_file():
                weights = torch.load(mask, map_location="cpu", weights_only=True)["mask"][0]  # the previous frame's
                self.writer.add_image("frame/consistency_mask", weights.clamp(0, 1), n, dataformats="CHW")

    def close(self) -> None:
        self.writer.close()
