"""The sliced Wasserstein style loss (Heitz, Vanhoey, Chambon & Belcour, "A Sliced Wasserstein Loss
for Neural Texture Synthesis", CVPR 2021): per layer, the features of the result and of the painting
are projected on random unit directions, drawn afresh at every evaluation, and each direction's
projections are compared sorted: the whole one-dimensional distributions, where a Gram matrix (or a
mean and covariance) matches second moments only.

Sorting is one-dimensional optimal transport: once the ranks are known, each position of the result
has a fixed target value per direction (the painting's quantile at its rank), and the loss is a sum
of per-position squared errors. That is what makes tiles exact (``scale/tiling.py``): a first pass
over the tiles gives every position's projection, the whole image's ranks and so each position's
target; each tile then backpropagates its own positions' errors.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from nst_lightning.loss.functional import quantile_targets, sorted_levels
from nst_lightning.loss.samples import Evaluation, SampleTargets, flat_weights, mix_samples, own_weights, positions, subsample

Weights = Union[Tensor, float, None]


def _project(rows: Tensor, directions: Tensor) -> Tensor:
    """Rows ``[N, C]`` projected on ``directions`` ``[C, D]``, as ``[D, N]``, contiguous: each direction's
    values in a row, the layout a sort along rows is fastest in (2x faster than a strided one here)."""
    return (rows @ directions).T.contiguous()


def _normalised(weights: Optional[Tensor]) -> Optional[Tensor]:
    return None if weights is None else weights / weights.sum().clamp_min(1e-30)


def _value(projected: Tensor, goal: Tensor, weights: Weights, scale: Tensor) -> Tensor:
    """The mean over directions of the weighted sum over positions of squared errors, over ``scale``:
    ``weights`` ``[N]`` (summing to 1 over the whole image), a number (each position's weight), or
    None (the mean over these positions)."""
    squared = (projected - goal).pow(2)
    if weights is None:
        per_direction = squared.mean(dim=1)
    elif isinstance(weights, Tensor):
        per_direction = squared @ weights
    else:
        per_direction = squared.sum(dim=1) * weights
    return per_direction.mean() / scale


class SlicedWassersteinStatistic(SampleTargets):
    """The squared sliced 2-Wasserstein distance between the result's and the painting's feature
    distributions at a layer, over ``directions`` random unit directions (None: as many as the layer
    has channels, as Heitz et al.), divided by the painting's mean squared projection (its mean
    squared feature norm over the channel count), so that it is dimensionless like the Gram loss.

    Where the counts of positions differ (a painting of another size or shape; a region), the
    painting's sorted projections are read at the result's quantile levels, interpolated linearly: a
    position of rank ``r`` among ``N`` is sent to the painting's quantile at ``(r + 1/2) / N``. A target
    keeps the painting's feature vectors (at most ``SAMPLES`` per layer, evenly spaced), because each
    evaluation projects them on new directions; blended paintings are their weighted union, whose
    quantiles are those of the mixture. Directions come from ``Evaluation.generator``: the same for
    every tile, region and painting of a step, and again after a resume.
    """

    # A painting's conv1_1 at 256 x 256, whole; at 512 x 512 every fourth position: its quantiles are
    # read at the result's levels by interpolation, and each step sorts them anew (the directions change).
    SAMPLES = 1 << 16

    # Measured (docs/lab/performance.md, "The style losses' memory"): 20-22.5 bytes per projection of a
    # position (fp32 and bf16-mixed, 256 and 512 px), its value, a transposed copy, the sort's value and
    # int64 index, its goal; and 36-114 MB besides (the painting's samples and their sorted projections).
    fixed_working_bytes = 150e6

    def __init__(self, directions: Optional[int] = None) -> None:
        self.directions = directions

    def working_bytes(self, channels: int) -> float:
        return 24.0 * (self.directions or channels)

    def blend(self, targets: Sequence[dict], blend_weights: Sequence[float]) -> dict:
        mixed = subsample(mix_samples(targets, blend_weights), self.SAMPLES)
        features = mixed["features"]
        energy = own_weights(mixed) @ features.pow(2).sum(dim=1)
        # A unit direction drawn uniformly sees 1/C of the squared norm on average.
        mixed["scale"] = (energy / features.shape[1]).clamp_min(1e-12)
        return mixed

    def directions_for(self, channels: int, evaluation: Evaluation, device: torch.device) -> Tensor:
        """``[C, D]`` unit directions for a layer of ``channels`` at this evaluation."""
        count = self.directions or channels
        drawn = torch.randn(channels, count, generator=evaluation.generator(channels, count))
        return (drawn / drawn.norm(dim=0, keepdim=True)).to(device)

    def _goal(self, projected: Tensor, weights: Optional[Tensor], target: dict, directions: Tensor) -> Tensor:
        """Each position's target projections ``[D, N]``, the painting's quantiles at its ranks."""
        painting, _, levels, _ = sorted_levels(_project(target["features"], directions), target["weights"])
        return quantile_targets(projected, weights, painting, levels)

    def loss(self, features: Tensor, target: dict, weights: Optional[Tensor] = None, evaluation: Evaluation = Evaluation()) -> Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            directions = self.directions_for(features.shape[1], evaluation, features.device)
            projected = _project(positions(features), directions)
            weights = _normalised(flat_weights(weights))
            with torch.no_grad():
                goal = self._goal(projected.detach(), weights, target, directions)
            return _value(projected, goal, weights, target["scale"])

    # ---- in tiles: projections first, each position's goal from the whole image's ranks -----------

    def part(self, features: Tensor, target: dict, weights: Optional[Tensor], evaluation: Evaluation) -> dict:
        with torch.autocast(device_type=features.device.type, enabled=False):
            directions = self.directions_for(features.shape[1], evaluation, features.device)
            return {"projected": _project(positions(features), directions), "weights": flat_weights(weights)}

    def settle(self, parts: Sequence[dict], masses: Sequence[float], target: dict, evaluation: Evaluation) -> tuple[Tensor, list]:
        projected = torch.cat([part["projected"] for part in parts], dim=1)
        sizes = [part["projected"].shape[1] for part in parts]
        weights: Optional[Tensor] = None
        if any(part["weights"] is not None for part in parts):
            ones = [projected.new_ones(n) for n in sizes]
            weights = _normalised(torch.cat([o if p["weights"] is None else p["weights"] for p, o in zip(parts, ones)]))
        directions = self.directions_for(target["features"].shape[1], evaluation, projected.device)
        goal = self._goal(projected, weights, target, directions)
        loss = _value(projected, goal, weights, target["scale"])
        shares = weights.split(sizes) if weights is not None else [1.0 / projected.shape[1]] * len(parts)
        return loss, [{"goal": g, "weights": w} for g, w in zip(goal.split(sizes, dim=1), shares)]

    def surrogate(self, features: Tensor, target: dict, weights: Optional[Tensor], guide: dict, evaluation: Evaluation) -> Tensor:
        """This tile's share of the loss, with its positions' goals fixed: its gradient is the true one."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            directions = self.directions_for(features.shape[1], evaluation, features.device)
            return _value(_project(positions(features), directions), guide["goal"], guide["weights"], target["scale"])
