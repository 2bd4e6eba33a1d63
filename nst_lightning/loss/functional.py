"""The loss's pure kernels: Gram matrices, relative squared errors, the content, style and
total-variation terms of Gatys et al. (2015) and the temporal term of Ruder et al. (2016) with the normalisation this project uses. Functions of
tensors only: no option, nothing above them (``total.py`` weighs them into the loss); the one class is
the Gram's autograd Function.

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
