"""The loss's pure kernels: Gram matrices, relative squared errors, the content, style and
total-variation terms of Gatys et al. (2015) and the temporal term of Ruder et al. (2016) with the normalisation this project uses;
for the losses on whole distributions of features, one-dimensional optimal transport by sorting
(``quantile_targets``) and nearest rows by cosine (``nearest_rows``). Functions of tensors only: no
option, nothing above them (``total.py`` weighs them into the loss); the one class is the Gram's
autograd Function.

Every function here works in fp32 whatever the input dtype: under autocast the VGG features may be
bf16/fp16, and a Gram matrix of fp16 features overflows (sums of ~1e4 squared activations over
thousands of positions), which is the classic mixed-precision NaN of other tools.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor


def position_weights(weights: Optional[Tensor]) -> Optional[Tensor]:
    """Spatial weights ``[N, 1, H, W]`` as ``[N, 1, H*W]`` summing to 1 per image; None (uniform) stays None."""
    if weights is None:
        return None
    flat = weights.float().reshape(weights.shape[0], 1, -1)
    return flat / flat.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def gram_matrix(features: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Gram matrix of ``[N, C, H, W]`` features, averaged over positions: ``F F^T / (H W)``.

    Gatys et al. use the unnormalised ``F F^T`` and fold ``1 / (4 N^2 M^2)`` into the loss; dividing by
    the number of positions ``M = H W`` here makes Grams of a style image and of the generated image
    comparable when their sizes differ. With ``weights`` (``[N, 1, H, W]``, e.g. a mask), the weighted
    average ``sum_m w_m f_m f_m^T / sum_m w_m``.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        n, c, h, w = features.shape
        if weights is None:
            flat, positions_first = _flat_view(features.float())
            return _SymmetricProduct.apply(flat, positions_first) / (h * w)
        # sum_m w_m f_m f_m^T is the plain Gram of the map scaled by sqrt(w) (weights are >= 0): the
        # symmetric product on the free view, as above, with no copy of a channels-last map.
        flat, positions_first = _flat_view(features.float())
        root = position_weights(weights).sqrt()
        return _SymmetricProduct.apply(flat * (root.transpose(1, 2) if positions_first else root), positions_first)


def _flat_view(features: Tensor) -> tuple[Tensor, bool]:
    """``[N, C, H, W]`` as a free view: ``[N, H*W, C]`` for channels-last maps (positions first), else
    ``[N, C, H*W]``. Reshaping channels-last maps to ``[N, C, H*W]`` would copy them every step."""
    n, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(n, h * w, c), True
    return features.reshape(n, c, h * w), False


class _SymmetricProduct(torch.autograd.Function):
    """``X X^T`` (``X`` is ``[N, C, M]``) or ``X^T X`` (``[N, M, C]``), with a backward of one product.

    Autograd's own backward of ``X @ X^T`` computes two products, one through a transposed view, and adds
    them element by element into a strided result: at conv1_1 of a 256 px image that add alone took about
    20 ms a step here, and the result's layout differed from the feature map's, so the tap's gradient add
    was slow too. ``G`` is symmetric, so the gradient is the single product ``(G' + G'^T) X`` (or
    ``X (G' + G'^T)``), laid out like ``X``.
    """

    @staticmethod
    def forward(ctx: Any, flat: Tensor, positions_first: bool) -> Tensor:
        ctx.save_for_backward(flat)
        ctx.positions_first = positions_first
        return flat.transpose(1, 2) @ flat if positions_first else flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (flat,) = ctx.saved_tensors
        both = grad + grad.transpose(1, 2)
        return (flat @ both if ctx.positions_first else both @ flat), None


def relative_squared_error(value: Tensor, target: Tensor) -> Tensor:
    """``||value - target||^2 / ||target||^2``, in fp32.

    This is the departure from the paper's raw sums of squares (its Eq. 1 and 4): dividing by the
    target's own energy makes each loss dimensionless, so (a) each style layer contributes on the
    same scale instead of the deepest Grams dominating, and (b) the same loss weights work whatever
    the activation scale of the VGG19 weights (the Caffe-derived ImageNet weights give activations
    ~255x those of torchvision's, i.e. raw losses 255^2 and 255^4 times larger).
    """
    with torch.autocast(device_type=value.device.type, enabled=False):
        value, target = value.float(), target.float()
        return (value - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)


def content_loss(features: Tensor, target_features: Tensor) -> Tensor:
    """Content loss (paper Eq. 1, normalised): relative squared error of the feature maps."""
    return relative_squared_error(features, target_features)


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Style loss of one layer (paper Eq. 4, normalised): relative squared error of Gram matrices."""
    return relative_squared_error(gram_matrix(features), target_gram)


def total_variation_loss(image: Tensor) -> Tensor:
    """Mean squared difference between vertically and horizontally neighbouring pixels.

    Not in Gatys et al. (2015); a smoothness prior (Mahendran & Vedaldi 2015, used by Johnson's
    neural-style) that removes the high-frequency noise the pixel-space optimisation can leave.
    A 0/1 checkerboard has every difference equal to 1, so its loss is 1 + 1 = 2.
    """
    with torch.autocast(device_type=image.device.type, enabled=False):
        image = image.float()
        dy = image[..., 1:, :] - image[..., :-1, :]
        dx = image[..., :, 1:] - image[..., :, :-1]
        return dy.pow(2).mean() + dx.pow(2).mean()


def temporal_loss(image: Tensor, previous: Tensor, weights: Tensor) -> Tensor:
    """Ruder, Dosovitskiy & Brox (2016), Eq. 7: ``(1 / D) sum_p c_p (x_p - w_p)^2``, the squared
    difference between the image ``x`` and the previous frame's result warped onto it ``w``, weighted
    per pixel by ``c`` (``[N, 1, H, W]`` or ``[N, C, H, W]``: 0 where the flow cannot be trusted, 1
    elsewhere), over ``D``, the number of values in the image (so its weight does not depend on the size).
    ``previous`` and ``weights`` may hold J earlier frames (``[J, ...]`` against a ``[1, ...]`` image):
    the sum over them, Ruder et al.'s long-term loss (Eq. 9).
    Plain pixel units, unlike the relative content and style terms: the images are in [0, 1].
    """
    with torch.autocast(device_type=image.device.type, enabled=False):
        image = image.float()
        return (weights.float() * (image - previous.float()).pow(2)).sum() / image.numel()


# ---- whole distributions: sorted projections, nearest neighbours ----------------------------------------


def midpoint_levels(count: int, device: torch.device) -> Tensor:
    """The quantile level of each of ``count`` equally weighted sorted values: ``(j + 1/2) / count``, fp64."""
    return (torch.arange(count, dtype=torch.float64, device=device) + 0.5) / count


def sorted_levels(values: Tensor, weights: Optional[Tensor]) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """``values`` ``[D, N]`` sorted along each row, the order (``sort``'s indices), and each sorted
    value's quantile level: the midpoint of its weight in the cumulative weights (``weights`` ``[N]``
    summing to 1), fp64 ``[D, N]``, or None where ``weights`` is None (equal weights: the levels are
    ``midpoint_levels``); with the sorted weights ``[D, N]`` (or None)."""
    ordered, order = values.contiguous().sort(dim=1)  # a strided sort is ~2x slower on a CPU
    if weights is None:
        return ordered, order, None, None
    sorted_weights = weights.double()[order]
    return ordered, order, sorted_weights.cumsum(dim=1) - sorted_weights / 2, sorted_weights


def interpolate(levels: Tensor, known_levels: Optional[Tensor], known_values: Tensor) -> Tensor:
    """Piecewise-linear interpolation, row by row, of ``known_values`` ``[D, M]`` given at increasing
    ``known_levels`` (``[M]`` or ``[D, M]``; None: ``midpoint_levels(M)``), at ``levels`` (``[N]`` or
    ``[D, N]``); constant beyond the ends (``numpy.interp`` per row). At a known level it is exactly the
    known value."""
    m = known_values.shape[1]
    if known_levels is None:
        known_levels = midpoint_levels(m, known_values.device)
    levels = levels.expand(known_values.shape[0], -1) if levels.dim() == 1 else levels
    high = torch.searchsorted(known_levels.contiguous(), levels.contiguous()).clamp(max=m - 1)
    low = (high - 1).clamp(min=0)
    known_levels = known_levels.expand(known_values.shape[0], -1)
    x0, x1 = known_levels.gather(1, low), known_levels.gather(1, high)
    fraction = ((levels - x0) / (x1 - x0).clamp_min(1e-300)).clamp(0, 1).to(known_values.dtype)
    y0, y1 = known_values.gather(1, low), known_values.gather(1, high)
    return y0 + fraction * (y1 - y0)


def uniform_quantiles(known_values: Tensor, count: int) -> Tensor:
    """``interpolate`` at the ``count`` midpoint levels of equal weights, of ``known_values`` ``[D, M]``
    at their own midpoint levels: no search, the place of level ``(j + 1/2) / count`` among ``M``
    values is ``((2j + 1) M - count) / (2 count)``, exact in integers (so equal counts read each value
    itself)."""
    m = known_values.shape[1]
    j = torch.arange(count, dtype=torch.float64, device=known_values.device)
    place = (((2 * j + 1) * m - count) / (2 * count)).clamp(0, m - 1)
    low = place.floor().long()
    fraction = (place - low).to(known_values.dtype)
    y0, y1 = known_values[:, low], known_values[:, (low + 1).clamp(max=m - 1)]
    return y0 + fraction * (y1 - y0)


def _tie_means(ordered: Tensor, values: Tensor, weights: Optional[Tensor]) -> Tensor:
    """``values`` ``[D, N]`` (along rows sorted by ``ordered``) with each run of equal ``ordered``
    entries given its weighted mean: tied positions are one position to the loss, whichever order a
    sort put them in (so tiles, which sort them in another order, get the same gradient)."""
    d, n = ordered.shape
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    # No ties (the usual case): nothing to average. Read on a CPU only, where it costs nothing and
    # saves the sums; on a GPU the read would wait for every queued kernel.
    if values.device.type == "cpu" and bool(starts.all()):
        return values
    group = starts.flatten().cumsum(0) - 1
    w = values.new_ones(values.shape) if weights is None else weights.to(values.dtype)
    sums = values.new_zeros(d * n).index_add_(0, group, (w * values).flatten())
    mass = values.new_zeros(d * n).index_add_(0, group, w.flatten())
    return (sums / mass.clamp_min(1e-30))[group].view(d, n)


def quantile_targets(values: Tensor, weights: Optional[Tensor], target_sorted: Tensor, target_levels: Optional[Tensor]) -> Tensor:
    """Sliced optimal transport in one dimension, per row: each of ``values`` ``[D, N]`` (weighted by
    ``weights`` ``[N]``, None: equally) is sent to the target distribution's quantile at its own
    quantile level: ``target_sorted`` ``[D, M]`` at ``target_levels`` (``[M]`` or ``[D, M]``; None:
    equal weights), interpolated where ``N != M`` (Heitz et al. 2021 sort both sides; equal counts
    give exactly the target's sorted values, rank for rank). Ties share the mean of their targets.
    Returns ``[D, N]``."""
    ordered, order, levels, sorted_weights = sorted_levels(values, weights)
    if levels is None and target_levels is None:  # equal weights on both sides: no search
        quantiles = uniform_quantiles(target_sorted, values.shape[1])
    else:
        levels = midpoint_levels(values.shape[1], values.device) if levels is None else levels
        quantiles = interpolate(levels, target_levels, target_sorted)
    targets = _tie_means(ordered, quantiles, sorted_weights)
    return torch.empty_like(targets).scatter_(1, order, targets)


def unit_rows(x: Tensor) -> Tensor:
    """Each row of ``x`` ``[N, C]`` divided by its norm (rows of zeros stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest_rows(queries: Tensor, candidates: Tensor, chunk_elements: int = 1 << 24) -> Tensor:
    """For each row of ``queries`` ``[N, C]``, the index of the row of ``candidates`` ``[M, C]`` with the
    largest inner product (the nearest by cosine, for unit rows; the first of equals), computed in
    chunks of queries so that at most ``chunk_elements`` similarities exist at once."""
    rows = max(1, chunk_elements // max(candidates.shape[0], 1))
    parts = [(queries[i : i + rows] @ candidates.T).argmax(dim=1) for i in range(0, queries.shape[0], rows)]
    return torch.cat(parts) if parts else queries.new_zeros(0, dtype=torch.long)
