"""A Laplacian pyramid's synthesis, and its adjoint, on ``[K, C, H, W]`` images.

Band ``k`` (0: the finest, the image's own size) is ``ceil(H / 2^k) x ceil(W / 2^k)``; an image is
the coarsest band upsampled and added to the next one, level by level (bilinear, to each band's exact
size, so any size works). The bands are packed into one tensor ``[K, C, N]`` (N: the bands' pixels
together), finest first: one parameter for the optimizer, as the image is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def band_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(H, W)`` of each band, the finest (the image's size) first."""
    return [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(levels)]


def packed_length(height: int, width: int, levels: int) -> int:
    """N: the pixels of all bands of an ``H x W`` image's pyramid."""
    return sum(h * w for h, w in band_sizes(height, width, levels))


def bands(packed: Tensor, size: tuple[int, int], levels: int) -> list[Tensor]:
    """The bands of ``packed`` ``[K, C, N]`` as ``[K, C, h, w]`` views, the finest first."""
    sizes = band_sizes(*size, levels)
    parts = torch.split(packed, [h * w for h, w in sizes], dim=-1)
    return [part.unflatten(-1, hw) for part, hw in zip(parts, sizes)]


def pack(parts: list[Tensor]) -> Tensor:
    """``bands``' inverse: ``[K, C, h, w]`` bands, the finest first, as one ``[K, C, N]`` tensor."""
    return torch.cat([part.flatten(-2) for part in parts], dim=-1)


def synthesis(packed: Tensor, size: tuple[int, int], levels: int) -> Tensor:
    """The ``[K, C, H, W]`` image of a packed pyramid: from the coarsest band, upsample and add the next."""
    parts = bands(packed, size, levels)
    image = parts[-1]
    for part in reversed(parts[:-1]):
        image = F.interpolate(image, size=part.shape[-2:], mode="bilinear", align_corners=False) + part
    return image


def adjoint(gradient: Tensor, levels: int) -> Tensor:
    """The gradient with respect to the packed pyramid, given the image's ``gradient``: ``synthesis``'s
    adjoint (its vector-Jacobian product; it is linear, so the point does not matter)."""
    height, width = gradient.shape[-2:]
    zero = gradient.new_zeros((*gradient.shape[:-2], packed_length(height, width, levels)), requires_grad=True)
    with torch.enable_grad():
        (result,) = torch.autograd.grad(synthesis(zero, (height, width), levels), zero, gradient)
    return result
