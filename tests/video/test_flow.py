"""Optical flow, warping, the consistency mask, the warping error, the flow cache and cuts, on synthetic
clips with an exactly known flow (a pan over a built-in photo) and on flows built by hand."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from nst_lightning.inputs.sources import read_source
from nst_lightning.utilities.errors import UserError
from nst_lightning.video.flow import FlowCache, consistency_mask, dis_flow, end_point_error, warp, warping_error
from nst_lightning.video.shots import find_cuts

H, W = 96, 128
TOP, LEFT = 120, 160  # where frame 0 of a pan sits in the photo: room for shifts either way


@lru_cache(maxsize=None)
def photo(name: str = "tubingen") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(read_source(f"builtin:{name}", "test"))).convert("RGB"))


def pan(dx: int, dy: int, name: str = "tubingen", start: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Frames a, b of a pan whose flow a -> b is exactly (dx, dy): a(x) = b(x + (dx, dy))."""
    top, left = TOP + start[1], LEFT + start[0]
    image = photo(name)
    return image[top : top + H, left : left + W], image[top - dy : top - dy + H, left - dx : left - dx + W]


def constant(dx: float, dy: float, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.broadcast_to(np.array([dx, dy], np.float32), (*shape, 2)).copy()


def interior(margin: int = 16) -> np.ndarray:
    inside = np.zeros((H, W), bool)
    inside[margin:-margin, margin:-margin] = True
    return inside


@pytest.mark.parametrize("dx, dy", [(3, 2), (-5, 1)])
def test_dis_flow_of_a_pan_is_the_shift(dx, dy):
    a, b = pan(dx, dy)
    flow = dis_flow(a, b)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    # Measured 0.07-0.10 px with "medium"; 0.18-0.39 with "fast", 0.31-0.63 with "ultrafast" (at this
    # small size its coarsest patches see little).
    assert end_point_error(flow, constant(dx, dy), interior()) < 0.25
    assert end_point_error(dis_flow(a, b, "fast"), constant(dx, dy), interior()) < 0.7
    assert end_point_error(dis_flow(a, b, "ultrafast"), constant(dx, dy), interior()) < 1.0


def test_warp_moves_the_other_frame_onto_this_grid():
    a, b = pan(3, 2)
    exact = warp(b.astype(np.float32), constant(3, 2))
    assert exact.shape == (H, W, 3) and exact.dtype == np.float32
    np.testing.assert_array_equal(exact[:-2, :-3], a[:-2, :-3])  # an integer shift samples pixels exactly
    estimated = warp(b.astype(np.float32), dis_flow(a, b))
    assert np.abs(estimated - a)[interior()].mean() < 4.0  # of 255; measured 1.3


def test_warp_is_bilinear_with_the_border_replicated_for_any_channels():
    image = np.arange(4 * 5, dtype=np.float32).reshape(4, 5)  # image(x, y) = 5 y + x: bilinear is exact
    flow = constant(0.25, 0.5, (4, 5))
    out = warp(image, flow)
    assert out.shape == (4, 5)
    np.testing.assert_allclose(out[:3, :4], image[:3, :4] + 0.25 + 2.5, atol=1e-4)
    np.testing.assert_allclose(out[3, :4], image[3, :4] + 0.25, atol=1e-4)  # y + 0.5 beyond the last row
    stack = np.random.default_rng(0).random((4, 5, 6), dtype=np.float32)
    together = warp(stack, flow)
    for c in range(6):
        np.testing.assert_allclose(together[..., c], warp(stack[..., c], flow), atol=1e-6)


def test_consistency_mask_of_a_pan_is_zero_only_where_the_view_leaves_the_frame():
    mask = consistency_mask(constant(3, 2), constant(-3, -2))
    assert mask.dtype == np.float32 and mask.shape == (H, W)
    assert (mask[:-2, :-3] == 1).all()
    assert (mask[-2:] == 0).all() and (mask[:, -3:] == 0).all()
    a, b = pan(3, 2)
    estimated = consistency_mask(dis_flow(a, b), dis_flow(b, a))
    assert estimated[interior()].mean() > 0.99


def test_consistency_mask_zeroes_a_disagreeing_patch():
    forward, reverse = constant(2, 0), constant(-2, 0)
    # Where forward lands in 40..49 x 30..39, the reverse says (+1, 0): |w + w'|^2 = 9 > 0.01 * 5 + 0.5.
    reverse[30:40, 42:52] = (1.0, 0.0)
    mask = consistency_mask(forward, reverse)
    assert (mask[30:40, 40:50] == 0).all()
    mask[30:40, 40:50] = 1
    # The bilinear sampling spreads the patch's edge one pixel outside it; the rest is consistent.
    mask[30:40, 39] = mask[30:40, 50] = 1
    mask[29, 40:50] = mask[40, 40:50] = 1
    assert (mask[:, :-2] == 1).all()
    # A small disagreement is within the tolerance 0.01 (|w|^2 + |w'|^2) + 0.5.
    assert (consistency_mask(forward, constant(-2.5, 0))[:, :-2] == 1).all()


def test_consistency_mask_zeroes_a_motion_boundary():
    forward = constant(0, 0)
    forward[:, 64:] = (1.0, 0.0)  # a step in u between columns 63 and 64
    reverse = -forward  # consistent everywhere: only the boundary fails
    mask = consistency_mask(forward, reverse)
    # Central differences see the step at 63 and 64 (|du/dx|^2 = 0.25 > 0.01 |w|^2 + 0.002).
    assert (mask[:, 63:65] == 0).all()
    assert (mask[:, :63] == 1).all() and (mask[:, 65:-1] == 1).all()
    assert (mask[:, -1] == 0).all()  # x + 1 leaves the frame


def test_end_point_error_by_hand():
    flow, truth = constant(0, 0, (2, 2)), constant(0, 0, (2, 2))
    flow[0, 0] = (3, 4)  # distance 5
    flow[1, 1] = (1, 0)  # distance 1
    assert end_point_error(flow, truth) == pytest.approx(6 / 4)
    assert end_point_error(flow, truth, np.array([[1, 0], [0, 1]])) == pytest.approx(3.0)
    with pytest.raises(UserError):
        end_point_error(flow, truth, np.zeros((2, 2)))


def test_warping_error_of_a_consistent_clip_is_small_and_of_noise_large():
    clip = [pan(3 * t, 2 * t)[1] for t in range(3)]  # one pan, frame t(x) = frame t+1(x + (3, 2))
    # Frame t+1 is frame t moved by the flow, so the clip is perfectly consistent with itself.
    assert warping_error(clip, clip) < 1e-3  # measured 2.1e-4 (DIS is 0.07 px off)
    noise = [np.random.default_rng(t).integers(0, 256, (H, W, 3), dtype=np.uint8) for t in range(3)]
    assert warping_error(noise, clip) > 0.1  # uniform noise: E|x - y|^2 = 1/6


def test_flow_cache_reuses_its_file_and_recomputes_for_another_shape_or_preset(tmp_path):
    a, b = pan(3, 2)
    cache = FlowCache(tmp_path, "medium")
    first = cache.pair(0, 1, a, b)
    np.testing.assert_array_equal(first, dis_flow(a, b, "medium"))
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("000000_000001")
    # Frames that would give another flow: the stored one comes back, bit for bit.
    c, d = pan(-5, 1)
    np.testing.assert_array_equal(FlowCache(tmp_path, "medium").pair(0, 1, c, d), first)
    # Another preset is another file; another working size is recomputed.
    assert not np.array_equal(FlowCache(tmp_path, "fast").pair(0, 1, a, b), first)
    small = FlowCache(tmp_path, "medium").pair(0, 1, a[:64, :80], b[:64, :80])
    assert small.shape == (64, 80, 2)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_find_cuts_finds_the_cut_between_two_pans_and_none_in_a_slow_pan():
    first = [pan(-4 * t, -t, "tubingen")[1] for t in range(4)]
    second = [pan(-4 * t, -t, "starry_night", start=(-100, -60))[1] for t in range(4)]
    assert find_cuts(first) == []
    assert find_cuts(first + second) == [4]
    assert find_cuts(first + second + first[:2]) == [4, 8]


def test_user_errors():
    a, _ = pan(0, 0)
    with pytest.raises(UserError):
        dis_flow(a, a[:50])
    with pytest.raises(UserError):
        dis_flow(a.astype(np.float32), a)
    with pytest.raises(UserError):
        dis_flow(a[:12], a[:12])  # DIS crashes the process on frames this small: refused first
    with pytest.raises(UserError):
        dis_flow(a, a, "slow")
