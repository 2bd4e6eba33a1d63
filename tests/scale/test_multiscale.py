"""Multi-scale schedule and the iterate average, by hand."""

import pytest
import torch

from nst_lightning.scale.iterate_average import IterateAverage
from nst_lightning.scale.multiscale import resize_adam_state, resize_image, stage_of_step, stage_sizes


def test_stage_sizes_grow_by_sqrt2_to_the_final_size():
    # 1024 / 2^2 = 256, 1024 / 2^1.5 = 362.04, 1024 / 2 = 512, 1024 / 2^0.5 = 724.08.
    assert stage_sizes(1024, 5) == [256, 362, 512, 724, 1024]
    assert stage_sizes(512, 1) == [512]


def test_stage_of_step():
    # Stages of 3 and 2 steps, the last takes the rest.
    assert [stage_of_step(step, [3, 2]) for step in range(8)] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert stage_of_step(100, []) == 0


def test_resize_adam_state_rescales_moments_to_the_new_gradient_size():
    # 2x2 -> 4x4 is 4 times the pixels, so each pixel's gradient will be 1/4 as large:
    # exp_avg 2 -> 2 / 4 = 0.5 and exp_avg_sq 4 -> 4 / 16 = 0.25 (constant maps stay constant).
    state = {"step": torch.tensor(7.0), "exp_avg": torch.full((1, 3, 2, 2), 2.0), "exp_avg_sq": torch.full((1, 3, 2, 2), 4.0)}
    resize_adam_state(state, (4, 4), pixel_ratio=4.0)
    assert torch.allclose(state["exp_avg"], torch.full((1, 3, 4, 4), 0.5))
    assert torch.allclose(state["exp_avg_sq"], torch.full((1, 3, 4, 4), 0.25))
    assert state["step"].item() == 7.0
    # exp_avg_sq stays non-negative next to sharp edges (bilinear, not bicubic, which overshoots).
    spiky = {"exp_avg_sq": torch.tensor([[0.0, 1.0], [1.0, 0.0]]).expand(1, 3, 2, 2).clone()}
    resize_adam_state(spiky, (7, 7), pixel_ratio=1.0)
    assert spiky["exp_avg_sq"].min() >= 0


def test_resize_image_stays_in_range():
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)).remainder(2).float().expand(1, 3, 4, 4)
    out = resize_image(checker, (9, 9))
    assert out.shape == (1, 3, 9, 9) and out.min() >= 0 and out.max() <= 1


def test_iterate_average_is_bias_corrected():
    average = IterateAverage(torch.zeros(1, 3, 2, 2), decay=0.5)
    average.update(torch.full((1, 3, 2, 2), 2.0))
    # After one update the raw buffer is 0.5 * 2 = 1; corrected by 1 - 0.5 it is the iterate itself.
    assert torch.allclose(average.get(), torch.full((1, 3, 2, 2), 2.0))
    average.update(torch.full((1, 3, 2, 2), 4.0))
    # Raw: 0.5 * 1 + 0.5 * 4 = 2.5; corrected by 1 - 0.25: 3.333 = (0.5 * 2 + 1 * 4) / 1.5.
    assert torch.allclose(average.get(), torch.full((1, 3, 2, 2), 2.5 / 0.75))
    average.resize((4, 4))
    assert torch.allclose(average.get(), torch.full((1, 3, 4, 4), 2.5 / 0.75))
    assert set(average.state_dict()) == {"value", "count"}  # checkpointed


def test_iterate_average_before_any_update_is_zero():
    assert IterateAverage(torch.ones(1, 3, 2, 2), decay=0.9).get().abs().sum() == 0
    with pytest.raises(TypeError):
        IterateAverage()  # type: ignore[call-arg]
