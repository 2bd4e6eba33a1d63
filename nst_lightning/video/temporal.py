"""The temporal loss (Ruder, Dosovitskiy & Brox 2016, Sec. 3.1): a frame's image kept close to the
previous frame's result warped onto it, wherever the optical flow can be trusted.

It reaches the core through its seams, not by growing ``StyleTransfer``: ``TemporalLoss`` is a
callback (``--trainer.callbacks+=nst_lightning.video.temporal.TemporalLoss``, as each frame's ``fit``
is given it by ``clip.py``) that, before the targets are computed, sets the module's ``target_kind``
to ``WithPrevious``: the photo's targets as usual, plus a ``TemporalTerm`` among the ``Targets``'
terms, which the loss adds to the total (untiled and tiled alike: it is a per-pixel term on the whole
image) and logs as ``train/temporal_loss``.

What it compares against is a file the clip writes before the frame's run starts (``previous.pt``:
the warped result and the consistency weights at the frame's size), so a resumed frame has exactly
the target it started with, and a frame depends only on its inputs and the previous frame's saved
result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from nst_lightning.loss.functional import temporal_loss
from nst_lightning.model.targets import Measure, Photos, Targets
from nst_lightning.utilities.errors import UserError


class TemporalTerm:
    """``weight * temporal_loss(image, previous, mask)``: a ``Term`` of the core (``model/targets.py``)."""

    name = "temporal_loss"

    def __init__(self, previous: Tensor, mask: Tensor, weight: float) -> None:
        self.previous, self.mask, self.weight = previous, mask, weight

    def __call__(self, image: Tensor) -> Tensor:
        return self.weight * temporal_loss(image, self.previous, self.mask)


class WithPrevious:
    """A kind of target: another kind's targets (the photo's, ``Photos``) and the temporal term, its
    warped result and weights resized to each coarse-to-fine stage's size (bilinear, antialiased:
    the mask's 0/1 become the fraction of trusted pixels under each smaller one)."""

    def __init__(self, previous: Tensor, mask: Tensor, weight: float, base: Any = None) -> None:
        self.previous, self.mask, self.weight, self.base = previous, mask, weight, base or Photos()

    def compute(self, measure: Measure, datamodule: Any, long_side: int) -> Targets:
        targets = self.base.compute(measure, datamodule, long_side)
        size = datamodule.images(long_side)[0].shape[-2:]
        previous, mask = (self._at(t, size).to(measure.device, torch.float32) for t in (self.previous, self.mask))
        return targets._replace(terms=(*targets.terms, TemporalTerm(previous, mask, self.weight)))

    @staticmethod
    def _at(tensor: Tensor, size: Any) -> Tensor:
        if tuple(tensor.shape[-2:]) == tuple(size):
            return tensor
        return F.interpolate(tensor, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def save_previous(path: Path, previous: Tensor, mask: Tensor) -> None:
    """What ``TemporalLoss`` reads: the earlier results warped onto this frame ``[J, 3, H, W]`` (J = 1:
    the previous one; more with long-term consistency) and their consistency weights ``[J, 1, H, W]``,
    fp32, written whole (temporary name, then renamed). The loss is the sum over the J."""
    partial = path.with_name(path.name + ".partial")
    torch.save({"previous": previous.float().contiguous(), "mask": mask.float().contiguous()}, partial)
    partial.replace(path)


class TemporalLoss(pl.Callback):
    def __init__(self, previous: str, weight: float = 1.0) -> None:
        """The temporal loss of a video frame (Ruder et al. 2016, Eq. 7).

        Args:
            previous: A file written by the video command: the previous frame's result warped onto this
                frame and the weights of its pixels (0 where the flow cannot be trusted).
            weight: The temporal loss's weight, against the content and style losses.
        """
        if weight < 0:
            raise UserError(f"TemporalLoss weight {weight}: must be >= 0 (0 turns the temporal loss off)")
        self.path, self.weight = Path(previous), float(weight)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before the module's on_fit_start, where the targets are computed from its target_kind.
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            previous, mask = saved["previous"], saved["mask"]
        except Exception as err:  # missing, not a torch file, not ours: the same fix
            raise UserError(
                f"the previous frame's warped result {self.path} cannot be read ({_first_words(err)}); "
                "delete the frame's run directory and rerun"
            ) from None
        if previous.dim() != 4 or mask.dim() != 4 or previous.shape[-2:] != mask.shape[-2:]:
            raise UserError(f"the previous frame's warped result {self.path} is damaged; delete the frame's run directory and rerun")
        # Around the kind already set (the clip's cached style, style_cache.py), else the photo's.
        pl_module.target_kind = WithPrevious(previous, mask, self.weight, pl_module.target_kind)


def _first_words(err: Exception) -> str:
    # torch.load's errors run to paragraphs: their first line, shortened, names the trouble.
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return line if len(line) <= 80 else line[:77] + "..."
