"""Scores for results, the same for every option (``benchmarks/evaluate.py`` and the quality tests).

- Content distance: the relative squared error of ``conv4_2`` features against the photo's (the
  paper's content layer), at the result's resolution. The photo itself scores 0.
- Style distance: the mean over ``conv1_1`` ... ``conv5_1`` of the relative squared error of Gram
  matrices against the painting's, with the painting resized so that its short side equals the
  result's. A mask restricts the result's Gram matrices to a region (guided Gram matrices, masks
  brought to each layer by downsampling), to score each region against its own painting.

Both are the losses' own functions (``loss/functional.py``) without the loss weights, so they are
dimensionless and comparable across options, style losses and runs; "the photo itself" is the
reference a result's style distance should fall well below.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_lightning.loss.functional import gram_matrix, relative_squared_error
from nst_lightning.loss.guided import layer_masks
from nst_lightning.model.vgg import VGG19Features

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"


class Scorer:
    """Content and style distances with one frozen VGG19 (``weights`` as ``--model.weights`` takes them)."""

    def __init__(self, weights: str = "IMAGENET1K_V1") -> None:
        self.vgg = VGG19Features([*STYLE_LAYERS, CONTENT_LAYER], weights).eval()
        self.indices = {name: self.vgg.layer_index(name) for name in STYLE_LAYERS}

    @torch.no_grad()
    def content_distance(self, result: Tensor, photo: Tensor) -> float:
        """``result`` and ``photo`` ``[1, 3, H, W]`` in [0, 1]; the photo is resized to the result."""
        photo = _resize(photo, tuple(result.shape[-2:]))
        return float(relative_squared_error(self.vgg(result)[CONTENT_LAYER], self.vgg(photo)[CONTENT_LAYER]))

    @torch.no_grad()
    def style_distance(self, result: Tensor, painting: Tensor, mask: Optional[Tensor] = None) -> float:
        """Mean over the style layers; the painting resized to the result's short side; ``mask``
        (``[1, 1, H, W]`` at the result's size) restricts the result's statistics to a region."""
        scale = min(result.shape[-2:]) / min(painting.shape[-2:])
        painting = _resize(painting, tuple(max(16, round(side * scale)) for side in painting.shape[-2:]))
        ours, theirs = self.vgg(result), self.vgg(painting)
        masks = layer_masks(mask, self.vgg.features, self.indices, "downsample") if mask is not None else {}
        errors = [relative_squared_error(gram_matrix(ours[n], masks.get(n)), gram_matrix(theirs[n])) for n in STYLE_LAYERS]
        return float(sum(errors) / len(errors))


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image.float(), size=size, mode="bicubic", antialias=True).clamp(0, 1)
