"""What the memory model decides for a run: whether it fits at all (checked from the images' headers,
before anything large is decoded or allocated), and with ``--model.max_memory_gb`` the tile size of
each coarse-to-fine stage: untiled where the whole image fits the budget, else the largest tile
that does.

The model itself (bytes per pixel, measured) is ``memory.py``; refusals name what would fit.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info

from nst_lightning.scale import memory
from nst_lightning.scale.memory import BUDGET_MARGIN, GB, MIN_AUTO_TILE, MemoryModel, crop_of, gb
from nst_lightning.utilities.errors import UserError, param


class MemoryBudget:
    """With ``max_memory_gb``: the bytes a run may add (``plan``'s answer), and the tile size each
    stage gets from it (``choose_tile``)."""

    def __init__(self, model: MemoryModel, limit: float, max_memory_gb: float) -> None:
        self.model, self.limit, self.max_memory_gb = model, limit, max_memory_gb

    def choose_tile(self, tiled: Any, height: int, width: int) -> None:
        """Set ``tiled.tile_size`` (a ``TiledLoss``) for a ``height`` x ``width`` stage: untiled if it
        fits the budget, else the largest tile that does (at least ``MIN_AUTO_TILE``)."""
        tile = self.model.largest_tile(height, width, self.limit, tiled.halo, tiled.align)
        tiled.tile_size = tile or math.ceil(MIN_AUTO_TILE / tiled.align) * tiled.align
        how = "untiled" if tiled.tile_size >= max(height, width) else f"in tiles of {tiled.tile_size} px"
        rank_zero_info(f"{width}x{height}: {how}, for a memory budget of {self.max_memory_gb:g} GB")


def plan_run(
    estimate: Callable[[str], MemoryModel],
    size: tuple[int, int],
    device: torch.device,
    precision: str,
    *,
    halo: int,
    align: int,
    tile_size: Optional[int],
    max_memory_gb: Optional[float],
    check: bool,
) -> Optional[MemoryBudget]:
    """``plan`` for a run of ``size`` (H, W: the result's, from the images' headers; K photos optimised
    together count as one image K times as tall), ``estimate(precision)`` the memory model of its options. The budget with
    ``max_memory_gb``, else None; raises ``UserError`` for a run that cannot fit."""
    height, width = size
    model = estimate(precision)
    limit = plan(
        model, height, width, device, halo=halo, align=align, tile_size=tile_size, max_memory_gb=max_memory_gb,
        check=check, bf16_model=None if "16" in precision else estimate("bf16-mixed"),
    )
    return None if limit is None else MemoryBudget(model, limit, max_memory_gb)


def largest_long_side(fits: Callable[[int, int], bool], height: int, width: int) -> int:
    """The largest long side (of this aspect, at most the current one) for which ``fits(h, w)``; 0 if
    none from 16 px up."""
    long_side = max(height, width)

    def shape(side: int) -> tuple[int, int]:
        return max(1, round(height * side / long_side)), max(1, round(width * side / long_side))

    low, high = 15, long_side
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(*shape(middle)) else (low, middle - 1)
    return low if low >= 16 else 0


def plan(
    model: MemoryModel,
    height: int,
    width: int,
    device: torch.device,
    *,
    halo: int,
    align: int,
    tile_size: Optional[int],
    max_memory_gb: Optional[float],
    check: bool,
    bf16_model: Optional[MemoryModel] = None,
) -> Optional[float]:
    """Check that a ``height`` x ``width`` run fits on ``device`` and return, with ``max_memory_gb``,
    the bytes it may add (the budget, capped by what is available); raise ``UserError`` naming what
    would fit otherwise. ``bf16_model``: the same run under bf16-mixed, to suggest it if it fits."""
    available = memory.available_bytes(device) if check else None
    holds = memory.process_bytes(device)
    if max_memory_gb is not None:
        limit = BUDGET_MARGIN * max_memory_gb * GB - holds
        if available is not None:
            limit = min(limit, available)
        if model.largest_tile(height, width, limit, halo, align) is None:
            smallest = math.ceil(MIN_AUTO_TILE / align) * align

            def fits(h: int, w: int) -> bool:
                return model.largest_tile(h, w, limit, halo, align) is not None

            need = model.estimate(height, width, crop_of(smallest, height, width, halo, align))
            side = largest_long_side(fits, height, width)
            there = "" if available is None else f"; {gb(holds + available)} is available to this process now"
            raise UserError(
                f"{param('model.max_memory_gb')} {max_memory_gb:g} is too small for a {width}x{height} result: even "
                f"{smallest} px tiles need about {gb(holds + need)} ({gb(model.state_per_pixel * height * width)} of it "
                f"for whole-image tensors){there}; raise it"
                + (f", or lower {param('data.image_size')} to {side}" if side else "")
            )
        return limit
    if available is None:
        return None
    crop = crop_of(tile_size, height, width, halo, align) if tile_size else None
    need = model.estimate(height, width, crop)
    if need <= available:
        return None
    ways = []

    def fits(h: int, w: int) -> bool:
        return model.estimate(h, w, crop_of(tile_size, h, w, halo, align) if tile_size else None) <= available

    side = largest_long_side(fits, height, width)
    if side:
        ways.append(f"{param('data.image_size')} {side}")
    if bf16_model is not None and bf16_model.estimate(height, width, crop) <= available:
        ways.append(f"{param('trainer.precision')} bf16-mixed")
    if model.largest_tile(height, width, available, halo, align) is not None:
        ways.append(f"{param('model.max_memory_gb')} {math.floor((holds + available) / GB)} (tiles)")
    how = f"in {tile_size} px tiles" if tile_size else "untiled"
    raise UserError(
        f"a {width}x{height} result needs about {gb(need)} of memory ({how}) on top of the {gb(holds)} this "
        f"process holds, but {gb(available)} is available on {device.type}; use "
        + (" or ".join(ways) if ways else "a smaller image")
        + f", or {param('model.check_memory')} false to try anyway"
    )
