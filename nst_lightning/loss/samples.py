"""What the style losses that compare whole distributions of features share (``sliced.py``,
``neighbours.py``): which evaluation of the loss this is, and a painting as a weighted sample of its
feature vectors.

Unlike a Gram matrix, such a target is not an average over positions: it is the set of the
painting's feature vectors at one layer, ``[M, C]``, each with a weight (a style mask's value, a
blended painting's share), or ``None`` where all weigh the same. A mixture of such sets (the tiles of
a painting measured in parts, several paintings blended) is their union, each vector's weight scaled
by its set's share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    """One step of SplitMix64 (Steele, Lea & Flood 2014): a fixed, well-mixed hash of a 64-bit integer,
    the same on every platform and Python version (``hash`` of a tuple is not promised to be)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@dataclass(frozen=True)
class Evaluation:
    """Which evaluation of the loss this is: the optimisation ``step``, the run's ``seed``, and the
    ``part`` of the image being evaluated (a tile's number; 0 untiled).

    A statistic that draws at random (sliced Wasserstein's directions) draws from ``generator``, seeded
    by the seed and the step alone: every tile of a step, and a resumed run at that step, draws the same.
    One that keeps something between steps (nearest neighbour's matches) keeps it per ``part``."""

    step: int = 0
    seed: int = 0
    part: int = 0

    @classmethod
    def at(cls, step: int) -> "Evaluation":
        """Step ``step`` of a run seeded as this process is (``seed_everything``: the same seed on resume)."""
        return cls(step=int(step), seed=torch.initial_seed())

    def of_part(self, part: int) -> "Evaluation":
        return replace(self, part=part)

    def generator(self, *salt: int) -> torch.Generator:
        """A CPU generator for this step, seeded from the seed, the step and ``salt`` (e.g. a layer's
        channel count): the same numbers on every device, in every tile, after every resume."""
        value = 0
        for number in (self.seed, self.step, *salt):
            value = _splitmix64(value ^ (int(number) & _MASK64))
        return torch.Generator().manual_seed(value & ((1 << 63) - 1))


def positions(features: Tensor) -> Tensor:
    """``[N, C, H, W]`` features as ``[N*H*W, C]`` fp32 rows, one per position (a free view of
    channels-last maps), in the order of ``weights.reshape(-1)``."""
    return features.float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])


def flat_weights(weights: Optional[Tensor]) -> Optional[Tensor]:
    """A weight map ``[N, 1, H, W]`` as ``[N*H*W]`` fp32 (None stays None), in the order of ``positions``."""
    return None if weights is None else weights.float().reshape(-1)


def _uniform_or(weights: Tensor) -> Optional[Tensor]:
    """``weights`` normalised to sum 1, or None where they are all equal (the fast path of every statistic)."""
    weights = weights / weights.sum().clamp_min(1e-30)
    return None if bool((weights.max() - weights.min()) <= 1e-6 * weights.mean()) else weights


def samples(features: Tensor, weights: Optional[Tensor] = None) -> dict[str, Optional[Tensor]]:
    """One image's feature vectors ``{"features": [M, C], "weights": [M] summing to 1, or None}``:
    with ``weights`` (``[1, 1, H, W]``, e.g. a style mask), the positions of positive weight, weighted."""
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat, w = positions(features), flat_weights(weights)
        if w is None:
            return {"features": flat.clone(), "weights": None}
        keep = w > 0
        return {"features": flat[keep].clone(), "weights": _uniform_or(w[keep])}


def own_weights(target: dict) -> Tensor:
    """A sample's weights as a tensor (uniform ones spelled out)."""
    features = target["features"]
    if target["weights"] is not None:
        return target["weights"]
    return features.new_full((features.shape[0],), 1.0 / max(features.shape[0], 1))


def mix_samples(targets: Sequence[dict], fractions: Sequence[float]) -> dict[str, Optional[Tensor]]:
    """The union of weighted samples, each one's weights scaled by its ``fraction``: the sample of a
    mixture (a painting from its tiles, or several paintings blended)."""
    pairs = [(t, f) for t, f in zip(targets, fractions) if f > 0 and t["features"].shape[0] > 0] or [(targets[0], 1.0)]
    if len(pairs) == 1:
        return {"features": pairs[0][0]["features"], "weights": pairs[0][0]["weights"]}
    weights = torch.cat([f * own_weights(t) for t, f in pairs])
    return {"features": torch.cat([t["features"] for t, _ in pairs]), "weights": _uniform_or(weights)}


def subsample(target: dict, limit: int) -> dict[str, Optional[Tensor]]:
    """At most ``limit`` of a sample's vectors, evenly spaced in its order (deterministic), their
    weights renormalised: a painting of any size costs what one of ``limit`` positions does."""
    count = target["features"].shape[0]
    if count <= limit:
        return dict(target)
    index = torch.linspace(0, count - 1, limit, device=target["features"].device).round().long()
    weights = None if target["weights"] is None else _uniform_or(target["weights"][index])
    return {"features": target["features"][index], "weights": weights}


class SampleTargets:
    """What a loss whose target is a weighted sample of the painting's feature vectors inherits: the
    target of one image (``samples``) and of a mixture of images' positions (``mix_samples``)."""

    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> dict:
        return samples(features, weights)

    def mix(self, targets: Sequence[dict], fractions: Sequence[float]) -> dict:
        return mix_samples(targets, fractions)
