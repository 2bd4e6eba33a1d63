"""Averaging of iterates: an exponential moving average of the image, used as the output.

Not in Gatys et al. (2015), who use L-BFGS. With Adam the image keeps jittering around the optimum
by about one step size per pixel; averaging the last ~1/(1 - decay) iterates removes that step
noise (crowsonkb/style-transfer-pytorch outputs such an average, decay 0.99 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class IterateAverage(nn.Module):
    """Bias-corrected EMA of an image, as Adam corrects its moments (Kingma & Ba 2015): the buffer
    starts at zero and the average is ``value / (1 - decay ** count)``, so the very first iterates
    count fully rather than being pulled towards an arbitrary start. Buffers, so checkpointed."""

    def __init__(self, like: Tensor, decay: float) -> None:
        super().__init__()
        self.decay = float(decay)
        self.register_buffer("value", torch.zeros_like(like, dtype=torch.float32))
        self.register_buffer("count", torch.zeros((), dtype=torch.float32, device=like.device))

    @torch.no_grad()
    def update(self, image: Tensor) -> None:
        self.value.mul_(self.decay).add_(image.detach().float(), alpha=1 - self.decay)
        self.count += 1

    def get(self) -> Tensor:
        """The average so far (zeros before the first update)."""
        if self.count.item() == 0:
            return self.value.clone()
        return self.value / (1 - self.decay ** self.count)

    @torch.no_grad()
    def resize(self, size: tuple[int, int]) -> None:
        """Upscale with the image between multi-scale stages. Bias correction is linear in ``value``,
        so resizing the raw buffer equals resizing the average. Not clamped: the raw buffer is scaled
        by ``1 - decay ** count``, and L-BFGS iterates may leave [0, 1]."""
        if tuple(self.value.shape[-2:]) != tuple(size):
            self.value = F.interpolate(self.value, size=size, mode="bicubic", align_corners=False)
