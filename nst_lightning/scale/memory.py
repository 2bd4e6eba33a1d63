"""How much memory a run needs, estimated before anything large is allocated, and the tile size a
memory budget allows.

A step's peak memory is two parts (docs/lab/performance.md, "Memory model"):

- **whole-image state**, bytes per pixel of the result: the image and its gradient (12 + 12 in
  fp32), the optimizer's state (Adam's two moments: 24; L-BFGS's history: 24 per remembered step),
  the average of the iterates (12), the last finite image (12), the content targets (4 bytes per
  channel and position of each content layer: 32 for ``conv4_2``), the 8-bit inputs (3 per image);
- **VGG19's working set** for what one pass sees (the whole image, or one tile with its halo): the
  activations kept for backward and the gradients and temporaries of the backward pass. It is
  proportional to the pixels and to ``sum(channels / stride^2)`` over the network up to its cut
  (320 channels a pixel through ``conv5_1``), times ``WORKING_BYTES_PER_CHANNEL``, measured;
- a **fixed** part, measured (``FIXED_BYTES``);
- in tiles, what the allocator keeps of the tiles' freed working sets (``TILED_RETAINED_RATIO``,
  at most ``TILED_RETAINED_MAX``), measured.

How a run uses the model (its check before anything is decoded, a budget's tile per stage) is
``budget.py``. The estimate is of the memory a run adds to what the process holds when it starts (Python, torch
and VGG19's weights: about 0.9 GB on a CPU), and is checked against measurement by
``tests/scale/test_memory.py``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

# Bytes of working set per activation channel and pixel (fp32, no checkpointing), fitted to peak
# RSS on a CPU at 512 and 1024 px (docs/lab/performance.md): about 1.65 x the 4 bytes an activation
# takes, for the backward's gradients and the convolutions' temporaries. It was 8.8 before the Gram
# matrix's own backward, which copies no feature map and adds no strided gradient.
WORKING_BYTES_PER_CHANNEL = 6.6
# Under bf16-mixed the activations are bfloat16 but the backward's temporaries are not all halved:
# measured 0.8 (the slope 1.78 instead of 2.17 GB/Mpx, 768 to 1024 px).
BF16_WORKING_RATIO = 0.8
# What a run adds whatever its size (Lightning's loop, oneDNN's reordered weights; under bf16-mixed
# also the weights' bfloat16 copies): the intercepts of the measured peaks, rounded up.
FIXED_BYTES = 60e6
FIXED_BYTES_BF16 = 150e6
# Activation checkpointing per VGG block: -35% of the per-pixel peak (docs/lab/performance.md).
CHECKPOINTING_WORKING_RATIO = 0.65
# What a tiled run holds besides its largest tile's working set: each tile's pass frees its working
# set and the next allocates one anew, and glibc keeps freed blocks below its mmap threshold (which
# rises to 32 MB as large blocks are freed) in the process, reusing them only in part when the next
# crop has another shape. Measured by benchmarks/memory_model.py (docs/lab/performance.md, "Memory model"):
# up to 0.63 of the crop's working set in 256 px tiles, 0.19-0.39 of it in 384 to 768 px tiles
# (whose large blocks go back to the system); no more after 6 or 8 steps than after 2, nor with 12
# tiles than with 9. Set so that every estimate is at least 5% above every peak measured:
# the ratio, under fp32 and bf16-mixed, then at most 150 MB plus 0.35 of the working set.
TILED_RETAINED_RATIO = 0.75
TILED_RETAINED_RATIO_BF16 = 0.2
TILED_RETAINED_MAX = 150e6
TILED_RETAINED_MAX_RATIO = 0.35
# A budget chooses tiles whose estimate is within this share of it: untiled, the estimate is within
# about 15% of the measured peak at large sizes, either way; tiled, it is 5-27% above the largest
# peak of each case measured (docs/lab/performance.md).
BUDGET_MARGIN = 0.9
# The smallest tile an automatic choice makes: below it a step costs over ~7x an untiled one.
MIN_AUTO_TILE = 128
GB = 1e9


def activation_channels(features: nn.Sequential) -> float:
    """``sum(channels / stride^2)`` over the convolutions' and poolings' outputs of ``features``:
    the activations per input pixel (in-place ReLUs add none)."""
    total, stride, channels = 0.0, 1, 3
    for module in features:
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
            total += channels / stride**2
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride *= 2
            total += channels / stride**2
    return total


def layer_channels(features: nn.Sequential, index: int) -> tuple[int, int]:
    """``(channels, stride)`` of the output of ``features[index]``."""
    stride, channels = 1, 3
    for module in features[: index + 1]:
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride *= 2
    return channels, stride


@dataclass(frozen=True)
class MemoryModel:
    """Bytes per pixel of a run's whole-image state and of VGG19's working set, and what the allocator
    keeps in a tiled run: ``retained_ratio`` of a crop's working set, at most ``retained_max`` bytes
    plus ``retained_max_ratio`` of it."""

    state_per_pixel: float
    working_per_pixel: float
    fixed: float = 0.0
    retained_ratio: float = 0.0
    retained_max: float = 0.0
    retained_max_ratio: float = 0.0

    def estimate(self, height: int, width: int, crop: Optional[tuple[int, int]] = None) -> float:
        """Bytes the run adds at its peak, for a ``height`` x ``width`` result whose passes each see
        ``crop`` pixels at the most (``None``: the whole image, untiled)."""
        state = self.fixed + self.state_per_pixel * height * width
        if crop is None:
            return state + self.working_per_pixel * height * width
        working = self.working_per_pixel * crop[0] * crop[1]
        retained = min(self.retained_ratio * working, self.retained_max + self.retained_max_ratio * working)
        return state + working + 24 * crop[0] * crop[1] + retained  # 24 a pixel: the crop and its gradient

    def largest_tile(self, height: int, width: int, budget: float, halo: int, align: int) -> Optional[int]:
        """The largest tile size (a multiple of ``align``, at least ``MIN_AUTO_TILE``) whose estimate
        fits ``budget`` bytes; ``max(height, width)`` if the untiled run fits; ``None`` if none does."""
        if self.estimate(height, width) <= budget:
            return max(height, width)

        def fits(steps: int) -> bool:
            return self.estimate(height, width, crop_of(steps * align, height, width, halo, align)) <= budget

        # Binary searches over grid steps, O(log size): a linear walk down from a size of 10^9 px
        # took minutes. The estimate grows with the tile except where a side's count of tiles falls
        # (3 to 2, 2 to 1: fewer tiles with a halo on both sides), so the steps are searched in the
        # ranges between those falls, from the highest down.
        smallest, top = math.ceil(MIN_AUTO_TILE / align), max(height, width) // align
        falls = sorted({top, *((side - align) // (k * align) for side in (height, width) for k in (1, 2))})
        for below, high in reversed(list(zip([smallest - 1, *falls], falls))):
            low = max(below + 1, smallest)  # the range's steps are low..high
            if low > high or not fits(low):
                continue
            while low < high:  # low fits
                middle = (low + high + 1) // 2
                low, high = (middle, high) if fits(middle) else (low, middle - 1)
            return low * align
        return None


def crop_of(tile: int, height: int, width: int, halo: int, align: int) -> tuple[int, int]:
    """``(height, width)`` of the largest crop a pass reads with ``tile`` (``tiles.tile_grid``'s): the
    tallest row's by the widest column's, each a tile with its halo, cut at the image's edges."""
    return _longest_crop(height, tile, halo, align), _longest_crop(width, tile, halo, align)


def _longest_crop(length: int, tile: int, halo: int, align: int) -> int:
    """The longest crop along one side of ``length`` pixels, as ``tiles.tile_grid`` cuts it, in O(1)
    (a budget's search evaluates it for images of any size). A tile at an edge reads its halo on one
    side only, so in a small image no crop is a whole tile plus two halos: counting one there made the
    estimate of a 512x384 image in 256 px tiles 1.47x the crops' pixels."""
    step = max(align, tile // align * align)
    tiles = -(-length // step)
    if tiles > 1 and length - (tiles - 1) * step < align:  # tile_grid's last tile takes the sliver
        tiles -= 1
    if tiles == 1:
        return length
    last = length - max(0, (tiles - 1) * step - halo)

    def crop(k: int) -> int:  # the k-th tile, one of the tiles - 1 a whole step long
        return min(length, (k + 1) * step + halo) - max(0, k * step - halo)

    # crop(k) is concave in k (it grows while the halo before the tile is cut by the image's start,
    # shrinks while the halo after it is cut by the end): its maximum is at an end of the range or
    # next to a point where one of those cuts stops.
    bends = (halo / step, (length - halo) / step - 1)
    ks = {0, tiles - 2, *(min(tiles - 2, max(0, f(b))) for b in bends for f in (math.floor, math.ceil))}
    return max(last, *(crop(k) for k in ks))


def memory_model(
    features: nn.Sequential,
    content_layer_indices: Sequence[int],
    *,
    optimizer: str,
    lbfgs_history: int,
    ema: bool,
    luminance: bool,
    precision: str,
    activation_checkpointing: bool,
    style_pixel_ratio: float,
    style_loss_bytes: tuple[float, float] = (0.0, 0.0),
) -> MemoryModel:
    """The model for a run of these options; ``style_pixel_ratio`` is the style images' pixels (all
    of them) per result pixel; ``style_loss_bytes`` what the style loss holds beyond VGG19's working set,
    per pixel of the result and fixed (``StyleStatistic.working_bytes``: the whole image's, also in tiles,
    whose first pass keeps every position's projections or matches)."""
    optimizer_state = 24 * lbfgs_history + 36 if optimizer == "lbfgs" else 24
    content_targets = 0.0
    for index in content_layer_indices:
        channels, stride = layer_channels(features, index)
        content_targets += 4 * channels / stride**2
    state = 12 + 12 + optimizer_state + (12 if ema else 0) + 12 + content_targets + 3 * (1 + style_pixel_ratio)
    state += (12 if luminance else 0) + style_loss_bytes[0]
    working, fixed, retained = WORKING_BYTES_PER_CHANNEL * activation_channels(features), FIXED_BYTES, TILED_RETAINED_RATIO
    if "16" in precision:  # bf16-mixed, 16-mixed
        working, fixed, retained = working * BF16_WORKING_RATIO, FIXED_BYTES_BF16, TILED_RETAINED_RATIO_BF16
    if activation_checkpointing:
        working *= CHECKPOINTING_WORKING_RATIO
    return MemoryModel(state, working, fixed + style_loss_bytes[1], retained, TILED_RETAINED_MAX, TILED_RETAINED_MAX_RATIO)


def available_bytes(device: torch.device, cgroup: str = "/sys/fs/cgroup", meminfo: str = "/proc/meminfo") -> Optional[float]:
    """Memory a run may still take on ``device``: the GPU's free memory, or on a CPU the kernel's
    MemAvailable, capped by a cgroup v2 limit (containers, SLURM) less what the cgroup uses apart
    from its reclaimable page cache; ``None`` where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    if device.type != "cpu":
        return None
    limits = []
    try:
        with open(meminfo) as lines:
            limits += [int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:")]
    except OSError:
        pass
    try:
        with open(f"{cgroup}/memory.max") as limit, open(f"{cgroup}/memory.current") as current:
            text = limit.read().strip()
            if text != "max":
                used = int(current.read().strip())
                try:  # the page cache counts in memory.current, and the kernel reclaims it first
                    with open(f"{cgroup}/memory.stat") as stat:
                        used -= next(int(line.split()[1]) for line in stat if line.startswith("inactive_file "))
                except (OSError, StopIteration, ValueError):
                    pass
                limits.append(int(text) - used)
    except (OSError, ValueError):
        pass
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return float(min(limits)) if limits else None


def process_bytes(device: torch.device) -> float:
    """What this process holds now on ``device`` (resident memory on a CPU)."""
    if device.type == "cuda":
        return float(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0.0


def gb(n: float) -> str:
    """``n`` bytes, readably: ``54.6 GB``, ``350 MB``, ``16,575 TB``, ``1.7e+13 TB`` (what an impossible size would need)."""
    if n >= 1e18:
        return f"{n / 1e12:.1e} TB"
    if n >= 1000 * GB:
        return f"{n / 1e12:,.0f} TB"
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / 1e6:.0f} MB"
