"""The tile grid of exact tiling (``tiling.py``): where each VGG19 layer's positions read from, the
halo a tile needs so that the features it owns never see the crop's edge, and the grid aligned to
the deepest layer's stride (so every pooling window is the same in a tile as in the whole image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn


@dataclass(frozen=True)
class LayerGeometry:
    """Where a layer's positions come from: position ``p`` reads input pixels
    ``[p * stride - left, p * stride + right]`` (for its full receptive field)."""

    stride: int
    left: int
    right: int


def layer_geometry(features: nn.Sequential) -> list[LayerGeometry]:
    """The geometry of the output of each module of a VGG ``features`` stack (3x3 convolutions with
    padding 1, ReLUs, 2x2 poolings with stride 2)."""
    stride, left, right, out = 1, 0, 0, []
    for module in features:
        if isinstance(module, nn.Conv2d):
            reach = (module.kernel_size[0] // 2) * stride
            left, right = left + reach, right + reach
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            right += stride  # a 2x2 window starting at 2p reaches one position further
            stride *= 2
        out.append(LayerGeometry(stride, left, right))
    return out


@dataclass(frozen=True)
class Tile:
    """``inner``: the pixels whose features this tile owns, ``crop``: what it reads (``inner`` plus the
    halo, cut at the image's edges); both ``(y0, y1, x0, x1)``."""

    inner: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]


def halo_and_alignment(geometries: list[LayerGeometry]) -> tuple[int, int]:
    """The halo (pixels read around a tile) and the grid the tiles are aligned to, for these layers.

    A tile owns the positions ``[x0 / stride, x1 / stride)`` of a layer; the first reads from
    ``x0 - left``, the last up to ``x1 - stride + right``. So the halo must reach ``left`` before the
    tile and ``right - stride + 1`` after it: 70 and 70 px for conv5_1 (80 on the 16 px grid)."""
    align = max(g.stride for g in geometries)
    reach = max(max(g.left, g.right - g.stride + 1) for g in geometries)
    return math.ceil(reach / align) * align, align


def vgg_halo_and_alignment(vgg: Any, layers: Sequence[str]) -> tuple[int, int]:
    """``halo_and_alignment`` for these layers of a ``VGG19Features``."""
    geometry = layer_geometry(vgg.features)
    return halo_and_alignment([geometry[vgg.layer_index(name)] for name in layers])


def tile_grid(height: int, width: int, tile_size: int, halo: int, align: int) -> list[Tile]:
    """Tiles whose inner regions partition the image, ``tile_size`` rounded down to the grid (at least
    one grid step), the last row and column taking the rest."""
    step = max(align, tile_size // align * align)

    def cuts(length: int) -> list[tuple[int, int]]:
        starts = list(range(0, length, step))
        if len(starts) > 1 and length - starts[-1] < align:  # no sliver narrower than the grid
            starts.pop()
        return [(start, starts[k + 1] if k + 1 < len(starts) else length) for k, start in enumerate(starts)]

    return [
        Tile((y0, y1, x0, x1), (max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)))
        for y0, y1 in cuts(height)
        for x0, x1 in cuts(width)
    ]
