"""The weighted total loss: what it weighs (``LossWeights``) and the one definition of it
(``weighted_losses``, and ``batch_losses`` for K images at once). ``StyleTransfer.forward``, the tiled
path (``scale/tiling.py``) and the plain loop of ``benchmarks/benchmark.py`` all call it; the style
term's statistic is pluggable (``statistics.py``, ``guided.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor

from nst_lightning.loss.functional import content_loss, total_variation_loss
from nst_lightning.loss.samples import Evaluation
from nst_lightning.loss.statistics import StyleStatistic
from nst_lightning.utilities.errors import UserError, param


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
    statistic: StyleStatistic,
    evaluation: Evaluation = Evaluation(),
) -> dict[str, Tensor]:
    """The weighted total ``loss`` of Gatys et al. (2015) Eq. 7 (plus total variation), and its parts:
    ``content_loss`` (mean over content layers), ``style_loss`` (the layer-weighted sum, their Eq. 5),
    ``tv_loss`` and ``style_loss/<layer>``. ``features`` are VGG19's of ``image``, the image the
    total-variation term smooths; ``evaluation``, which step this is (``samples.Evaluation``)."""
    zero = image.new_zeros((), dtype=torch.float32)
    content = sum((content_loss(features[n], content_targets[n]) for n in weights.content_layers), zero)
    content = content / max(len(weights.content_layers), 1)
    per_layer = {n: statistic.loss(features[n], style_targets[n], None, evaluation) for n in weights.style_layers}
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
    statistic: StyleStatistic,
    evaluation: Evaluation = Evaluation(),
) -> dict[str, Tensor]:
    """``weighted_losses`` of each image of ``image`` (``[K, 3, H, W]``) against its own targets
    (``targets[k]``: content features and style statistics), with its own normalisation. The total
    ``loss`` is their sum, so each image's gradient is the one it has alone, and with Adam (whose
    update is per element) each image follows its own run: K runs in one VGG19 pass. The parts
    (``content_loss``...) are sums too; ``image_<k>/loss``, ``image_<k>/content_loss`` and
    ``image_<k>/style_loss`` are each image's own."""
    if len(targets) == 1:
        return weighted_losses(features, image, *targets[0], weights, statistic, evaluation)
    per_image = [
        weighted_losses({n: f[k : k + 1] for n, f in features.items()}, image[k : k + 1], content, style, weights, statistic, evaluation)
        for k, (content, style) in enumerate(targets)
    ]
    losses = {name: sum(losses[name] for losses in per_image) for name in per_image[0]}
    for k, own in enumerate(per_image):
        losses.update({f"image_{k}/{name}": own[name] for name in ("loss", "content_loss", "style_loss")})
    return losses
