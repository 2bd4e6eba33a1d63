"""The memory estimate (memory.py): its parts by hand, the tile a budget chooses, the refusals, and the
estimate against the peak memory a real run measures."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest
import torch

from nst_lightning.evaluation.peak import estimate_now, measure
from nst_lightning.model.vgg import LAYER_INDEX, vgg19_features_architecture
from nst_lightning.scale.budget import largest_long_side, plan
from nst_lightning.scale.memory import MIN_AUTO_TILE, MemoryModel, activation_channels, crop_of, gb, memory_model
from nst_lightning.scale.tiles import tile_grid
from nst_lightning.utilities.errors import UserError
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, info_lines

CPU = torch.device("cpu")


def features_through(layer: str) -> torch.nn.Sequential:
    return vgg19_features_architecture()[: LAYER_INDEX[layer] + 1]


def test_activation_channels_by_hand():
    # conv1_x: 2 x 64; pool1: 64/4; conv2_x: 2 x 128/4; pool2: 128/16; conv3_x: 4 x 256/16; pool3:
    # 256/64; conv4_x: 4 x 512/64; pool4: 512/256; conv5_1: 512/256.
    assert activation_channels(features_through("conv5_1")) == 128 + 16 + 64 + 8 + 64 + 4 + 32 + 2 + 2
    assert activation_channels(features_through("conv4_2")) == 128 + 16 + 64 + 8 + 64 + 4 + 16


def test_state_per_pixel_by_hand():
    features = features_through("conv5_1")
    options = dict(lbfgs_history=100, ema=False, luminance=False, precision="32", activation_checkpointing=False, style_pixel_ratio=1.0)
    adam = memory_model(features, [LAYER_INDEX["conv4_2"]], optimizer="adam", **options)
    # image 12 + gradient 12 + Adam 24 + last finite image 12 + conv4_2 target (512 channels at
    # stride 8: 4 * 512 / 64 = 32) + 8-bit content and style 3 + 3
    assert adam.state_per_pixel == 12 + 12 + 24 + 12 + 32 + 6
    lbfgs = memory_model(features, [LAYER_INDEX["conv4_2"]], optimizer="lbfgs", **options)
    assert lbfgs.state_per_pixel - adam.state_per_pixel == 24 * 100 + 36 - 24  # the history dominates
    assert lbfgs.working_per_pixel == adam.working_per_pixel
    bf16 = memory_model(features, [LAYER_INDEX["conv4_2"]], optimizer="adam", **{**options, "precision": "bf16-mixed"})
    checkpointed = memory_model(features, [LAYER_INDEX["conv4_2"]], optimizer="adam", **{**options, "activation_checkpointing": True})
    assert bf16.working_per_pixel < adam.working_per_pixel and checkpointed.working_per_pixel < adam.working_per_pixel


def test_the_largest_tile_that_fits_a_budget():
    model = MemoryModel(state_per_pixel=100.0, working_per_pixel=3000.0)
    height, width, halo, align = 3000, 4000, 80, 16
    whole = model.estimate(height, width)
    assert model.largest_tile(height, width, whole, halo, align) == 4000  # fits untiled
    budget = model.estimate(height, width, crop_of(1024, height, width, halo, align))
    tile = model.largest_tile(height, width, budget, halo, align)
    assert tile % align == 0 and 1024 <= tile < 1024 + align
    assert model.estimate(height, width, crop_of(tile, height, width, halo, align)) <= budget
    assert model.estimate(height, width, crop_of(tile + align, height, width, halo, align)) > budget
    assert model.largest_tile(height, width, model.state_per_pixel * height * width, halo, align) is None


def linear_largest_tile(model: MemoryModel, height: int, width: int, budget: float, halo: int, align: int):
    """The search ``largest_tile`` replaced: every tile on the grid, from the largest down."""
    if model.estimate(height, width) <= budget:
        return max(height, width)
    tile = (max(height, width) // align) * align
    while tile >= math.ceil(MIN_AUTO_TILE / align) * align:
        if model.estimate(height, width, crop_of(tile, height, width, halo, align)) <= budget:
            return tile
        tile -= align
    return None


@pytest.mark.parametrize("align", [8, 16, 48])
def test_the_binary_tile_search_finds_what_the_linear_one_did(align):
    model = MemoryModel(98.0, 2112.0, 60e6, retained_ratio=0.75, retained_max=150e6, retained_max_ratio=0.35)
    for height, width in [(3000, 4000), (384, 512), (100, 5000), (7000, 90), (120, 100), (4320, 7680)]:
        untiled = model.estimate(height, width)
        # From nothing fits to everything fits, through budgets that land between grid steps.
        for budget in [0.0, model.state_per_pixel * height * width, *(untiled * f for f in (0.05, 0.1, 0.13, 0.2, 0.31, 0.5, 0.77, 0.99, 1.0))]:
            expected = linear_largest_tile(model, height, width, budget, 80, align)
            assert model.largest_tile(height, width, budget, 80, align) == expected, (height, width, budget)


def test_the_binary_tile_search_finds_what_the_linear_one_did_where_the_estimate_falls():
    # Where a larger step leaves fewer tiles with a halo on both sides, the estimate falls as the
    # tile grows (one binary search over all the steps missed the largest tile in about 1% of these).
    model = MemoryModel(98.0, 2112.0, 60e6, retained_ratio=0.75, retained_max=150e6, retained_max_ratio=0.35)
    random = np.random.default_rng(0)
    for _ in range(2000):
        height, width = (int(n) for n in random.integers(1, 3000, 2))
        budget, align = model.estimate(height, width) * random.random(), int(random.choice([16, 48]))
        expected = linear_largest_tile(model, height, width, budget, 80, align)
        assert model.largest_tile(height, width, budget, 80, align) == expected, (height, width, budget, align)


def test_crop_of_is_the_largest_crop_of_the_tile_grid():
    random = np.random.default_rng(1)
    for _ in range(2000):
        height, width, tile = (int(n) for n in random.integers(1, 1500, 3))
        halo, align = int(random.choice([0, 8, 80])), int(random.choice([1, 16, 32]))
        tiles = tile_grid(height, width, tile, halo, align)
        largest = max(t.crop[1] - t.crop[0] for t in tiles), max(t.crop[3] - t.crop[2] for t in tiles)
        assert crop_of(tile, height, width, halo, align) == largest, (height, width, tile, halo, align)
    # In O(1): a side of 10^11 px.
    assert crop_of(128, 75 * 10**9, 10**11, 80, 16) == (288, 288)


@pytest.mark.parametrize("size", ["100000000000", "1000000000"])
@pytest.mark.slow
def test_a_size_far_too_large_is_refused_at_once_through_the_cli(tmp_path, size):
    # The refusal searches tile sizes (for a --model.max_memory_gb to suggest): a linear walk over
    # them took over a minute at 10^9 px and hours at 10^11. The refusal itself now takes
    # milliseconds; the timeout is for a process's start on a busy machine.
    done = forked.run(["fit", "--config", DEBUG_CONFIG, "--data.image_size", size], cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("nst_lightning")]
    height = int(size) * 3 // 4  # the built-in photo is 4:3
    assert len(lines) == 1 and lines[0].startswith(f"nst_lightning: error: a {size}x{height} result needs about "), lines
    assert "lower" not in lines[0] and "--data.image_size " in lines[0] and "--model.check_memory false" in lines[0]
    # A size a person reads, not "16575000000000000.0 GB".
    assert re.search(r"needs about \d\.\de\+\d+ TB of memory", lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []


def test_largest_long_side():
    assert largest_long_side(lambda h, w: h * w <= 300 * 400, 600, 800) == 400
    assert largest_long_side(lambda h, w: False, 600, 800) == 0


def test_a_budget_too_small_is_refused_saying_what_is_possible(monkeypatch):
    monkeypatch.setattr("nst_lightning.scale.memory.available_bytes", lambda device: 20e9)
    monkeypatch.setattr("nst_lightning.scale.memory.process_bytes", lambda device: 0.5e9)
    model = MemoryModel(state_per_pixel=100.0, working_per_pixel=3000.0)
    with pytest.raises(UserError) as err:
        plan(model, 6000, 8000, CPU, halo=80, align=16, tile_size=None, max_memory_gb=1.0, check=True)
    message = err.value.for_cli()
    assert "--model.max_memory_gb 1 is too small for a 8000x6000 result" in message
    assert f"even {MIN_AUTO_TILE} px tiles need about 5.6 GB (4.8 GB of it for whole-image tensors)" in message
    assert "20.5 GB is available to this process now; raise it, or lower --data.image_size to " in message
    assert plan(model, 6000, 8000, CPU, halo=80, align=16, tile_size=None, max_memory_gb=10.0, check=True) == 0.9 * 10e9 - 0.5e9


def test_a_size_that_cannot_fit_is_refused_with_what_would(monkeypatch):
    monkeypatch.setattr("nst_lightning.scale.memory.available_bytes", lambda device: 2e9)
    model = MemoryModel(state_per_pixel=100.0, working_per_pixel=3000.0)
    with pytest.raises(UserError) as err:
        plan(model, 3000, 4000, CPU, halo=80, align=16, tile_size=None, max_memory_gb=None, check=True,
             bf16_model=MemoryModel(50.0, 50.0))
    message = err.value.for_cli()
    assert message.startswith("a 4000x3000 result needs about 37.2 GB of memory (untiled)")
    assert "2.0 GB is available on cpu" in message
    for way in ("--data.image_size ", "--trainer.precision bf16-mixed", "--model.max_memory_gb ", "--model.check_memory false"):
        assert way in message
    # The expert's way on, and a size that fits, pass.
    assert plan(model, 3000, 4000, CPU, halo=80, align=16, tile_size=None, max_memory_gb=None, check=False) is None
    assert plan(model, 300, 400, CPU, halo=80, align=16, tile_size=None, max_memory_gb=None, check=True) is None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "options, bounds",
    # Not smaller: below ~0.2 Mpx what the allocator keeps from the warm-up run moves the peak by
    # +-60 MB (a bf16 run at 384 px measured 285-343 MB). One of each kind (fp32 512, tiled 512 in
    # 256 px tiles, bf16 768) keeps the suite short; benchmarks/memory_model.py measures more.
    # Untiled, the estimate is fitted to the peaks (+0 to +1.3%) and may miss by 25% either way.
    # Tiled, it is set above every peak measured: 1.05-1.27x the largest of each case, at most 1.48x
    # the smallest (docs/lab/performance.md, "Memory model"; this case: 1.13-1.23x in 9 runs). Below the
    # peak a budget would be overrun; far above it, a budget chooses smaller tiles than it could.
    [({"image_size": 512}, (0.75, 1.25)), ({"image_size": 512, "tile_size": 256}, (1.0, 1.5)),
     ({"image_size": 768, "precision": "bf16-mixed"}, (0.75, 1.25))],
    ids=["512", "512-tiled", "768-bf16"],
)
def test_the_estimate_is_close_to_the_measured_peak(options, bounds):
    run = measure(options, timeout=300)
    low, high = bounds
    assert low < run["estimate"] / run["added"] < high, f"estimate {run['estimate'] / 1e6:.0f} MB, measured {run['added'] / 1e6:.0f} MB"


def test_the_style_losses_on_distributions_are_in_the_estimate():
    # Sliced Wasserstein and nearest neighbour hold every position's projections or matches beside
    # VGG19's working set: without them the estimate was 0.45-0.87x the measured peak (a budget overrun).
    # The peaks python -m nst_lightning.evaluation.peak measured (256 and 512 px, fp32 and bf16-mixed, the
    # three losses), against today's estimate: at least 5% above each, and not so far above that a budget
    # would tile for nothing.
    with open(REPO / "docs" / "lab" / "evaluation" / "memory" / "style_losses.jsonl") as lines:
        runs = [json.loads(line) for line in lines]
    assert {run["style_loss"] for run in runs} == {"gram", "sliced_wasserstein", "nearest_neighbour"}
    for run in runs:
        ratio = estimate_now(run)["estimate"] / run["added"]
        if run["style_loss"] != "gram":
            assert 1.05 <= ratio <= 1.75, (run, ratio)


def test_every_tiled_peak_measured_is_5_percent_under_its_estimate():
    # The runs benchmarks/memory_model.py measured (fp32 512 to 2048 px in 256 to 768 px tiles, bf16-mixed
    # 768 px in 256 px tiles), against today's estimate: a budget that holds the estimate holds them.
    estimates = {}
    with open(REPO / "docs" / "lab" / "evaluation" / "memory" / "tiled_peaks.jsonl") as lines:
        runs = [json.loads(line) for line in lines]
    for run in runs:
        case = (run["precision"], run["image_size"], run["tile_size"])
        if case not in estimates:
            estimates[case] = estimate_now(run)["estimate"]
        assert estimates[case] >= 1.05 * run["added"], (case, estimates[case] / 1e6, run["added"] / 1e6)
    assert len(estimates) >= 10


def test_a_budget_tiles_only_the_stages_that_need_it(monkeypatch):
    # A budget between the two stages' untiled estimates (with the process's own memory taken as 0 and
    # plenty available): the first stage runs untiled, the final one in tiles, and both finish.

    from nst_lightning import stylize

    monkeypatch.setattr("nst_lightning.scale.memory.process_bytes", lambda device: 0.0)
    monkeypatch.setattr("nst_lightning.scale.memory.available_bytes", lambda device: 100e9)
    options = dict(weights="random", content_layers=["conv2_1"], style_layers=["conv1_1", "conv2_1"], stage_steps=[1], progress_bar=False)
    with info_lines() as logged:
        result = stylize("builtin:tubingen", "builtin:starry_night", image_size=256, max_steps=3, max_memory_gb=0.12, **options)
    lines = [line for line in logged if "memory budget" in line]
    assert lines[0] == "181x136: untiled, for a memory budget of 0.12 GB"
    assert lines[1].startswith("256x192: in tiles of ") and int(lines[1].split()[4]) < 256, lines
    assert result.size == (256, 192)


def test_available_memory_counts_a_cgroup_limit_without_its_page_cache(tmp_path):
    from nst_lightning.scale.memory import available_bytes

    (tmp_path / "meminfo").write_text("MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n")
    assert available_bytes(CPU, cgroup=str(tmp_path / "none"), meminfo=str(tmp_path / "meminfo")) == 50_000_000 * 1024
    # A 8 GB container that has used 7 GB, 4 GB of which is inactive page cache: 5 GB are available.
    (tmp_path / "memory.max").write_text(f"{8 * 2**30}\n")
    (tmp_path / "memory.current").write_text(f"{7 * 2**30}\n")
    (tmp_path / "memory.stat").write_text(f"anon {3 * 2**30}\nfile {4 * 2**30}\ninactive_file {4 * 2**30}\n")
    assert available_bytes(CPU, cgroup=str(tmp_path), meminfo=str(tmp_path / "meminfo")) == 5 * 2**30
    (tmp_path / "memory.max").write_text("max\n")
    assert available_bytes(CPU, cgroup=str(tmp_path), meminfo=str(tmp_path / "meminfo")) == 50_000_000 * 1024


@pytest.mark.parametrize(
    ("n", "text"), [(350e6, "350 MB"), (54.6e9, "54.6 GB"), (999e9, "999.0 GB"), (16575e12, "16,575 TB"), (1.66e25, "1.7e+13 TB")]
)
def test_sizes_read_as_a_person_writes_them(n, text):
    # An impossible print's refusal once read "16575000000000000.0 GB".
    assert gb(n) == text
