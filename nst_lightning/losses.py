"""The loss of Gatys et al. (2015), with the normalisation this project uses: pure functions of tensors.

``weighted_losses`` is the one definition of the total loss; ``StyleTransfer.forward`` and the plain
loop of ``scripts/benchmark.py`` both call it. The style term's statistic (Gram matrix, or mean and
covariance) is pluggable: see ``style_statistics.py``.

Every function here works in fp32 whatever the input dtype: under autocast the VGG features may be
bf16/fp16, and a Gram matrix of fp16 features overflows (sums of ~1e4 squared activations over
thousands of positions), which is the classic mixed-precision NaN of other tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import torch
from torch import Tensor

from nst_lightning.errors import UserError, param

if TYPE_CHECKING:
    from nst_lightning.style_statistics import StyleStatistic


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
        flat = features.float().reshape(n, c, h * w)
        if weights is None:
            return flat @ flat.transpose(1, 2) / (h * w)
        return (flat * position_weights(weights)) @ flat.transpose(1, 2)


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


@dataclass(frozen=True)
class LossWeights:
    """What the total loss weighs: the paper's alpha (``content``) and beta (``style``), the
    smoothness prior (``tv``), and each style layer's share (``style_layers``, summing to 1)."""

    content_layers: tuple[str, ...]
    style_layers: Mapping[str, float]
    content: float = 1.0
    style: float = 10.0
    tv: float = 0.0

    @classmethod
    def from_options(
        cls,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        style_layer_weights: Optional[Sequence[float]],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ) -> "LossWeights":
        """From ``StyleTransfer``'s options, refusing combinations that leave nothing to optimise."""
        if not content_layers and not style_layers:
            raise UserError(
                f"{param('model.content_layers')} and {param('model.style_layers')} are both empty; name at least one layer"
            )
        if style_layer_weights is not None and len(style_layer_weights) != len(style_layers):
            raise UserError(
                f"{param('model.style_layer_weights')} has {len(style_layer_weights)} values for "
                f"{len(style_layers)} style layers; give one weight per layer"
            )
        shares = torch.tensor(style_layer_weights or [1.0] * len(style_layers), dtype=torch.float32)
        if style_layers and shares.sum() <= 0:
            raise UserError(f"{param('model.style_layer_weights')} are all zero; give at least one positive weight")
        if content_weight == 0 and style_weight == 0 and tv_weight == 0:
            raise UserError(
                f"{param('model.content_weight')}, {param('model.style_weight')} and {param('model.tv_weight')} are "
                f"all 0, so there is nothing to optimise; give {param('model.style_weight')} (or another weight) a "
                "positive value"
            )
        return cls(
            content_layers=tuple(content_layers),
            style_layers=dict(zip(style_layers, (shares / shares.sum()).tolist())),
            content=content_weight,
            style=style_weight,
            tv=tv_weight,
        )


def weighted_losses(
    features: Mapping[str, Tensor],
    image: Tensor,
    content_targets: Mapping[str, Tensor],
    style_targets: Mapping[str, Any],
    weights: LossWeights,
    statistic: "StyleStatistic",
) -> dict[str, Tensor]:
    """The weighted total ``loss`` of Gatys et al. (2015) Eq. 7 (plus total variation), and its parts:
    ``content_loss`` (mean over content layers), ``style_loss`` (the layer-weighted sum, their Eq. 5),
    ``tv_loss`` and ``style_loss/<layer>``. ``features`` are VGG19's of ``image``, the image the
    total-variation term smooths."""
    zero = image.new_zeros((), dtype=torch.float32)
    content = sum((content_loss(features[n], content_targets[n]) for n in weights.content_layers), zero)
    content = content / max(len(weights.content_layers), 1)
    per_layer = {n: statistic.loss(features[n], style_targets[n]) for n in weights.style_layers}
    style = sum((weights.style_layers[n] * loss for n, loss in per_layer.items()), zero)
    tv = total_variation_loss(image) if weights.tv > 0 else zero
    total = weights.content * content + weights.style * style + weights.tv * tv
    losses = {"loss": total, "content_loss": content, "style_loss": style, "tv_loss": tv}
    losses.update({f"style_loss/{n}": loss for n, loss in per_layer.items()})
    return losses


def batch_losses(
    features: Mapping[str, Tensor],
    image: Tensor,
    targets: Sequence[tuple[Mapping[str, Tensor], Mapping[str, Any]]],
    weights: LossWeights,
    statistic: "StyleStatistic",
) -> dict[str, Tensor]:
    """``weighted_losses`` of each image of ``image`` (``[K, 3, H, W]``) against its own targets
    (``targets[k]``: content features and style statistics), with its own normalisation. The total
    ``loss`` is their sum, so each image's gradient is the one it has alone, and with Adam (whose
    update is per element) each image follows its own run: K runs in one VGG19 pass. The parts
    (``content_loss``...) are sums too; ``image_<k>/loss``, ``image_<k>/content_loss`` and
    ``image_<k>/style_loss`` are each image's own."""
    if len(targets) == 1:
        return weighted_losses(features, image, *targets[0], weights, statistic)
    per_image = [
        weighted_losses({n: f[k : k + 1] for n, f in features.items()}, image[k : k + 1], content, style, weights, statistic)
        for k, (content, style) in enumerate(targets)
    ]
    losses = {name: sum(losses[name] for losses in per_image) for name in per_image[0]}
    for k, own in enumerate(per_image):
        losses.update({f"image_{k}/{name}": own[name] for name in ("loss", "content_loss", "style_loss")})
    return losses
