"""What "style" means to the style loss: a statistic of a layer's features, and a loss against it.

A ``StyleStatistic`` is what a style loss is, so that a new one is one class plus one entry in
``STYLE_STATISTICS``:

- ``target(features, weights)``: what the loss needs of one image's features (``[1, C, H, W]``),
  computed once; ``weights`` (``[1, 1, H, W]``, optional) weighs positions, so that a mask can restrict
  it to a region (Gatys et al. 2017's guided Gram matrices).
- ``mix(targets, fractions)``: the target of the union of several images' positions, each with its
  share (a painting measured tile by tile); ``blend(targets, blend_weights)``: one target from several
  paintings' (blended styles), with whatever the loss precomputes from it.
- ``loss(features, target, weights, evaluation)``: the dimensionless loss of the result's features
  against a blended target; 0 at the target. ``evaluation`` (``samples.Evaluation``) says which step
  it is, for a loss that draws at random or keeps matches between steps.
- ``working_bytes(channels)`` and ``fixed_working_bytes``: what the loss holds at a step beyond VGG19's
  own working set, in bytes per position of a layer of ``channels`` and a fixed part (the memory model,
  ``scale/memory.py``, adds them; measured, docs/lab/performance.md).
- ``part``, ``settle``, ``surrogate``: the same loss in tiles (``scale/tiling.py``). ``part`` is what a
  first pass keeps of a tile's positions, ``settle`` turns every tile's parts into the loss and one
  guide per tile, and ``surrogate`` (differentiated, in a second pass) is a function of the tile's
  features whose gradient is that tile's share of the loss's gradient.

Two families do this differently. An *average over positions* (``AverageStatistic``: Gram,
Wasserstein) is a statistic whose whole-image value is the position-weighted ``mix`` of its tiles'; the
surrogate is the linearisation ``<dL/dS, S_tile>``. A loss on *the distribution of positions*
(``sliced.py``, ``neighbours.py``) is not an average, but given what a first pass fixes (the ranks of
every projection; each position's nearest painting feature) it is a sum of per-position terms, each
with a fixed target: the surrogate is the tile's own terms.

A target is whatever its statistic needs (the Gram matrix itself; a dict of tensors for the others).
Everything is computed in fp32 (or fp64) whatever autocast says: a Gram matrix of fp16 features
overflows.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Protocol, Sequence

import torch
from torch import Tensor

from nst_lightning.loss.functional import gram_matrix, position_weights, relative_squared_error
from nst_lightning.loss.neighbours import NearestNeighbourStatistic
from nst_lightning.loss.samples import Evaluation
from nst_lightning.loss.sliced import SlicedWassersteinStatistic
from nst_lightning.utilities.errors import UserError, param

Target = Any  # a Tensor or a dict of Tensors, of the statistic's own making
StyleLossName = Literal["gram", "wasserstein", "sliced_wasserstein", "nearest_neighbour"]


class StyleStatistic(Protocol):
    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> Target: ...

    def mix(self, targets: Sequence[Target], fractions: Sequence[float]) -> Target: ...

    def blend(self, targets: Sequence[Target], blend_weights: Sequence[float]) -> Target: ...

    def loss(self, features: Tensor, target: Target, weights: Optional[Tensor] = None, evaluation: Evaluation = Evaluation()) -> Tensor: ...

    def part(self, features: Tensor, target: Target, weights: Optional[Tensor], evaluation: Evaluation) -> Any: ...

    def settle(self, parts: Sequence[Any], masses: Sequence[float], target: Target, evaluation: Evaluation) -> tuple[Tensor, list]: ...

    def surrogate(self, features: Tensor, target: Target, weights: Optional[Tensor], guide: Any, evaluation: Evaluation) -> Tensor: ...

    fixed_working_bytes: float

    def working_bytes(self, channels: int) -> float: ...


def mix(statistics: Sequence[Target], weights: Sequence[float]) -> Target:
    """The weighted sum of statistics (tensors, or dicts of tensors): for averages over positions, the
    statistic of the mixture of their positions (a blend of styles, or an image from its tiles)."""
    if isinstance(statistics[0], dict):
        return {key: mix([s[key] for s in statistics], weights) for key in statistics[0]}
    return sum(w * s for w, s in zip(weights, statistics))


class AverageStatistic:
    """A statistic that is an average over positions, compared by ``distance(statistic, target)``: its
    loss depends on the whole image only through the statistic, so in tiles each tile's part is its own
    statistic (mixed by the share of positions it owns), and its surrogate is ``<dL/dS, S_tile>``,
    whose gradient with respect to the tile's features is exactly the true one."""

    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> Target:
        raise NotImplementedError

    def distance(self, statistic: Target, target: Target) -> Tensor:
        raise NotImplementedError

    def mix(self, targets: Sequence[Target], fractions: Sequence[float]) -> Target:
        return mix(targets, fractions)

    # A C x C statistic per layer: nothing that grows with the image beyond VGG19's own working set.
    fixed_working_bytes = 0.0

    def working_bytes(self, channels: int) -> float:
        return 0.0

    def loss(self, features: Tensor, target: Target, weights: Optional[Tensor] = None, evaluation: Evaluation = Evaluation()) -> Tensor:
        return self.distance(self.target(features, weights), target)

    def part(self, features: Tensor, target: Target, weights: Optional[Tensor], evaluation: Evaluation) -> Target:
        return self.target(features, weights)

    def settle(self, parts: Sequence[Target], masses: Sequence[float], target: Target, evaluation: Evaluation) -> tuple[Tensor, list]:
        total = sum(masses)
        statistic = _detached_leaf(mix(parts, [n / total for n in masses]))
        with torch.enable_grad():
            loss = self.distance(statistic, target)
            leaves = list(statistic.values()) if isinstance(statistic, dict) else [statistic]
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        gradient = dict(zip(statistic, grads)) if isinstance(statistic, dict) else grads[0]
        return loss.detach(), [(gradient, n / total) for n in masses]

    def surrogate(self, features: Tensor, target: Target, weights: Optional[Tensor], guide: Any, evaluation: Evaluation) -> Tensor:
        gradient, fraction = guide
        return fraction * _inner(gradient, self.target(features, weights))


def _detached_leaf(statistic: Any) -> Any:
    if isinstance(statistic, dict):
        return {key: value.detach().requires_grad_() for key, value in statistic.items()}
    return statistic.detach().requires_grad_()


def _inner(gradient: Any, part: Any) -> Tensor:
    """``<gradient, part>`` summed over every entry (tensors, or dicts of tensors)."""
    if isinstance(part, dict):
        return sum((_inner(gradient[key], part[key]) for key in part if gradient[key] is not None), part[next(iter(part))].new_zeros(()))
    return (gradient.to(part.dtype) * part).sum()


class GramStatistic(AverageStatistic):
    """Gatys et al. (2015): the Gram matrix of the features, and the squared distance between Gram
    matrices (their Eq. 4), divided by the target's squared norm so that it is dimensionless (see
    ``functional.relative_squared_error``). Blended styles take the weighted sum of their Grams, as
    jcjohnson/neural-style's ``-style_blend_weights`` does."""

    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> Tensor:
        return gram_matrix(features, weights)

    def blend(self, targets: Sequence[Tensor], blend_weights: Sequence[float]) -> Tensor:
        return mix(targets, blend_weights)

    def distance(self, statistic: Tensor, target: Tensor) -> Tensor:
        return relative_squared_error(statistic, target)


class _TraceSqrtm(torch.autograd.Function):
    """``trace(sqrtm(A))`` of a symmetric positive semi-definite ``A``, by eigendecomposition in fp64.

    The gradient, ``A^(-1/2) / 2``, is infinite where an eigenvalue is 0 (a layer with more channels
    than positions has a singular covariance, e.g. conv5_1's 512 channels over a few dozen positions).
    Eigenvalues are floored at ``eps`` times the largest, which keeps it finite; the value changes by
    at most ``sqrt(eps)`` relative."""

    @staticmethod
    def forward(ctx, matrix: Tensor, eps: float) -> Tensor:
        values, vectors = torch.linalg.eigh(matrix.double())
        values = values.clamp_min(eps * values.max().clamp_min(1e-300))
        ctx.save_for_backward(values, vectors)
        ctx.dtype = matrix.dtype
        return values.sqrt().sum().to(matrix.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        values, vectors = ctx.saved_tensors
        half_inverse_sqrt = (vectors * (0.5 / values.sqrt())) @ vectors.transpose(-2, -1)
        return (grad.double() * half_inverse_sqrt).to(ctx.dtype), None


def trace_sqrtm(matrix: Tensor, eps: float = 1e-10) -> Tensor:
    """``trace(A^(1/2))`` of a symmetric PSD matrix ``[C, C]``, with a finite gradient."""
    return _TraceSqrtm.apply(matrix, eps)


def sqrtm(matrix: Tensor) -> Tensor:
    """``A^(1/2)`` of a symmetric PSD matrix, in fp64 (for targets: no gradient)."""
    values, vectors = torch.linalg.eigh(matrix.double())
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.transpose(-2, -1)


class WassersteinStatistic(AverageStatistic):
    """The 2-Wasserstein distance between Gaussians fitted to the features (mean and covariance of
    the C-dimensional feature vectors over positions), as crowsonkb/style-transfer-pytorch uses:

        W2^2 = |m - m_t|^2 + tr(S) + tr(S_t) - 2 tr((S_t^(1/2) S S_t^(1/2))^(1/2))

    Unlike the Gram loss it matches the mean and the covariance separately, and, being a distance
    between distributions, it does not over-weigh the few channels with the largest activations.
    Both covariances get a ridge of ``RIDGE`` times the target's mean eigenvalue: a layer with more
    channels than positions (conv5_1's 512 over a few dozen at small sizes) has a singular
    covariance, where the square root's gradient is infinite; with the ridge the distance is still one
    between two Gaussians (0 for identical features) and its gradient is finite.
    Targets keep the mean and the second raw moment ``E[f f^T]``, which (unlike the covariance)
    blend linearly: a blend of styles is the mixture of their feature distributions. Divided by the
    target's ``|m_t|^2 + tr(S_t)`` (its mean squared feature norm), so that the loss is dimensionless
    like the Gram loss and the same ``style_weight`` serves both. Not in Gatys et al. (2015).
    """

    def target(self, features: Tensor, weights: Optional[Tensor] = None) -> Target:
        with torch.autocast(device_type=features.device.type, enabled=False):
            flat = features.float().flatten(2)
            w = position_weights(weights)
            mean = flat.mean(dim=-1) if w is None else (flat * w).sum(dim=-1)
            return {"mean": mean[0], "second_moment": gram_matrix(features, weights)[0]}

    RIDGE = 1e-5

    def blend(self, targets: Sequence[Target], blend_weights: Sequence[float]) -> Target:
        blended = mix(targets, blend_weights)
        mean = blended["mean"].double()
        covariance = blended["second_moment"].double() - torch.outer(mean, mean)
        ridge = self.RIDGE * torch.trace(covariance).clamp_min(1e-12) / len(mean)
        covariance = covariance + ridge * torch.eye(len(mean), dtype=covariance.dtype, device=covariance.device)
        # Computed once here, not every step: the target's square root and its size.
        blended["ridge"] = ridge
        blended["covariance_sqrt"] = sqrtm(covariance)
        blended["trace_covariance"] = torch.trace(covariance)
        blended["energy"] = torch.trace(blended["second_moment"].double())
        return blended

    def distance(self, moments: Target, target: Target) -> Tensor:
        with torch.autocast(device_type=moments["mean"].device.type, enabled=False):
            mean = moments["mean"].double()
            covariance = moments["second_moment"].double() - torch.outer(mean, mean)
            covariance = covariance + target["ridge"] * torch.eye(len(mean), dtype=covariance.dtype, device=covariance.device)
            root = target["covariance_sqrt"]
            cross = trace_sqrtm(root @ covariance @ root)
            distance = (
                (mean - target["mean"].double()).pow(2).sum()
                + torch.trace(covariance) + target["trace_covariance"] - 2 * cross
            )
            # Rounding can leave a distance of 0 slightly negative.
            return (distance.clamp_min(0) / target["energy"].clamp_min(1e-12)).float()


STYLE_STATISTICS: dict[str, type[StyleStatistic]] = {
    "gram": GramStatistic,
    "wasserstein": WassersteinStatistic,
    "sliced_wasserstein": SlicedWassersteinStatistic,
    "nearest_neighbour": NearestNeighbourStatistic,
}


# Each loss's own options: the ``StyleTransfer`` option, the loss it belongs to, its argument there, and
# the value that means "not set" (any other value given to another loss is refused, never ignored).
OWN_OPTIONS = {
    "sw_directions": ("sliced_wasserstein", "directions", None),
    "nn_refresh": ("nearest_neighbour", "refresh", 1),
}


def style_statistic(name: str, **options: Any) -> StyleStatistic:
    """The statistic called ``name``, given the options of ``OWN_OPTIONS`` (``sw_directions`` for
    ``sliced_wasserstein``, ``nn_refresh`` for ``nearest_neighbour``; the others take none). An option
    of another loss, set, is a ``UserError``: it would silently change nothing."""
    arguments = {}
    for option, value in options.items():
        owner, argument, unset = OWN_OPTIONS[option]
        if owner == name:
            arguments[argument] = value
        elif value != unset:
            raise UserError(f"{param('model.' + option)} is for {param('model.style_loss')} {owner}, not {name}: remove it or choose {owner}")
    return STYLE_STATISTICS[name](**arguments)
