"""The guided style loss of Gatys et al. (2017, Sec. 4): a style statistic per region of the photo.

A region's style loss compares *guided* statistics: the Gram matrix (or mean and covariance) of
the mask-weighted features, normalised by the mask's mass, against the painting's, optionally taken
only inside a mask over the painting. Region losses are averaged with their weights, so a small
region counts as much as a large one. It is one ``StyleStatistic`` wrapped (``GuidedStatistic``), so
every style loss has regions. The masks themselves are inputs (``inputs/masks.py``).

Masks reach each VGG19 layer's resolution in one of Gatys et al.'s two ways (``layer_masks``):
``downsample`` averages the mask over each layer position's pixels (their "simple" method);
``propagate`` passes it through the network with every convolution replaced by a 3x3 box filter and
the network's own poolings, so a layer's mask also covers the positions whose receptive field
reaches into the region. docs/lab/quality.md compares them on the built-in example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from nst_lightning.loss.samples import Evaluation

MaskMethod = Literal["downsample", "propagate"]


# ---- masks at each layer ----------------------------------------------------------------------------


def layer_masks(mask: Tensor, features: nn.Sequential, layer_indices: dict[str, int], method: MaskMethod) -> dict[str, Tensor]:
    """The mask at the resolution of each layer (``layer_indices``: name -> index in ``features``),
    as ``[1, 1, h, w]``. ``downsample``: the average of the mask over the pixels each position
    covers (area); ``propagate``: the mask passed through the network, every 3x3 convolution a box
    filter, every pooling the network's own."""
    wanted = {index: name for name, index in layer_indices.items()}
    out: dict[str, Tensor] = {}
    current = mask.float()
    stride = 1
    for index, module in enumerate(features):
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride *= 2
            current = module(current) if method == "propagate" else current
        elif isinstance(module, nn.Conv2d) and method == "propagate":
            current = F.avg_pool2d(current, 3, stride=1, padding=1, count_include_pad=False)
        if index in wanted:
            if method == "downsample":
                size = (mask.shape[-2] // stride, mask.shape[-1] // stride)
                out[wanted[index]] = F.adaptive_avg_pool2d(mask.float()[..., : size[0] * stride, : size[1] * stride], size)
            else:
                out[wanted[index]] = current
        if len(out) == len(wanted):
            break
    return out


# ---- the guided style loss ----------------------------------------------------------------------------


@dataclass
class GuidedTarget:
    """A layer's style targets for regions: each region's target, its mask at that layer (None:
    everywhere) and its share of the style loss (the shares sum to 1)."""

    targets: list[Any]
    masks: list[Optional[Tensor]]
    shares: list[float]


class GuidedStatistic:
    """Wraps a ``StyleStatistic`` (``statistics.py``): a layer's loss is the share-weighted sum
    of each region's ``loss(features, target, mask)``, whose statistic is the mask-weighted one.
    Plain (unguided) targets pass through to the wrapped statistic unchanged, and so does the tiled
    path's part of the seam (``scale/tiling.py`` takes a guided target's regions apart itself)."""

    def __init__(self, statistic: Any) -> None:
        self.statistic = statistic

    @property
    def fixed_working_bytes(self) -> float:
        return self.statistic.fixed_working_bytes

    def working_bytes(self, channels: int) -> float:
        return self.statistic.working_bytes(channels)

    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> Any:
        return self.statistic.target(features, weights)

    def mix(self, targets: Sequence[Any], fractions: Sequence[float]) -> Any:
        return self.statistic.mix(targets, fractions)

    def blend(self, targets: Sequence[Any], blend_weights: Sequence[float]) -> Any:
        return self.statistic.blend(targets, blend_weights)

    def loss(self, features: Tensor, target: Any, weights: Optional[Tensor] = None, evaluation: Evaluation = Evaluation()) -> Tensor:
        if not isinstance(target, GuidedTarget):
            return self.statistic.loss(features, target, weights, evaluation)
        total = None
        for region_target, mask, share in zip(target.targets, target.masks, target.shares):
            mask = None if mask is None else mask.to(features.device)
            loss = share * self.statistic.loss(features, region_target, mask, evaluation)
            total = loss if total is None else total + loss
        return total

    def part(self, features: Tensor, target: Any, weights: Optional[Tensor], evaluation: Evaluation) -> Any:
        return self.statistic.part(features, target, weights, evaluation)

    def settle(self, parts: Sequence[Any], masses: Sequence[float], target: Any, evaluation: Evaluation) -> tuple[Tensor, list]:
        return self.statistic.settle(parts, masses, target, evaluation)

    def surrogate(self, features: Tensor, target: Any, weights: Optional[Tensor], guide: Any, evaluation: Evaluation) -> Tensor:
        return self.statistic.surrogate(features, target, weights, guide, evaluation)
