"""The losses on whole distributions of features (sliced Wasserstein, nearest neighbour) against values
computed by hand on tiny tensors."""

import math

import pytest
import torch

from nst_lightning.loss.functional import interpolate, quantile_targets
from nst_lightning.loss.neighbours import NearestNeighbourStatistic
from nst_lightning.loss.samples import Evaluation
from nst_lightning.loss.sliced import SlicedWassersteinStatistic


def one_channel(values: list[float]) -> torch.Tensor:
    """Features of one channel over len(values) positions, ``[1, 1, 1, M]``."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def vectors(rows: list[list[float]]) -> torch.Tensor:
    """Features ``[1, C, 1, M]`` whose positions are the given C-vectors."""
    return torch.tensor(rows, dtype=torch.float32).T.reshape(1, len(rows[0]), 1, len(rows))


def sliced_target(statistic, *paintings, weights=None):
    return statistic.blend([statistic.target(p) for p in paintings], weights or [1.0 / len(paintings)] * len(paintings))


# ---- sliced Wasserstein ------------------------------------------------------------------------------


def test_sliced_wasserstein_compares_sorted_values_and_its_gradient_by_hand():
    # One channel: the one unit direction is +1 or -1, and either gives the same sorted pairs:
    # result 1, 3, 2 sorted 1, 2, 3 against the painting's 0, 5, 10: errors 1, 3, 7, mean square 59/3.
    # The painting's mean squared projection is (0 + 100 + 25) / 3, so the loss is 59 / 125.
    statistic = SlicedWassersteinStatistic()
    target = sliced_target(statistic, one_channel([0.0, 10.0, 5.0]))
    features = one_channel([1.0, 3.0, 2.0]).requires_grad_()
    loss = statistic.loss(features, target)
    assert loss.item() == pytest.approx(59 / 125, rel=1e-6)
    loss.backward()
    # d/dx_m of mean((x - t)^2) / scale: 2 (x_m - t_m) / 3 / (125 / 3), each x sent to the value of its rank.
    assert torch.allclose(features.grad.flatten(), torch.tensor([2 * 1, 2 * -7, 2 * -3]) / 125.0)


def test_sliced_wasserstein_with_unequal_counts_reads_interpolated_quantiles():
    # Two positions (levels 1/4, 3/4) against four (levels 1/8, 3/8, 5/8, 7/8; sorted 0, 5, 10, 20):
    # quantile 1/4 is half way from 0 to 5 (2.5), 3/4 half way from 10 to 20 (15).
    statistic = SlicedWassersteinStatistic()
    target = sliced_target(statistic, one_channel([0.0, 10.0, 5.0, 20.0]))
    scale = (0 + 100 + 25 + 400) / 4
    loss = statistic.loss(one_channel([1.0, 3.0]), target)
    assert loss.item() == pytest.approx(((1 - 2.5) ** 2 + (3 - 15) ** 2) / 2 / scale, rel=1e-6)
    assert interpolate(torch.tensor([[0.0, 0.3, 2.0]], dtype=torch.float64), torch.tensor([0.1, 0.5], dtype=torch.float64),
                       torch.tensor([[10.0, 20.0]])).tolist() == [[10.0, 15.0, 20.0]]  # fmt: skip


def test_sliced_wasserstein_projects_on_the_drawn_directions_by_hand():
    # Two channels, three positions, two directions: each direction's projections sorted against the
    # painting's, computed here with Python's own sorted().
    statistic = SlicedWassersteinStatistic(directions=2)
    painting, result = [[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], [[0.5, 0.5], [2.0, 0.0], [0.0, -1.0]]
    target = sliced_target(statistic, vectors(painting))
    evaluation = Evaluation(step=7, seed=3)
    directions = statistic.directions_for(2, evaluation, torch.device("cpu")).T.tolist()
    assert all(math.isclose(dx * dx + dy * dy, 1.0, rel_tol=1e-6) for dx, dy in directions)
    squared = 0.0
    for dx, dy in directions:
        ours = sorted(dx * x + dy * y for x, y in result)
        theirs = sorted(dx * x + dy * y for x, y in painting)
        squared += sum((a - b) ** 2 for a, b in zip(ours, theirs)) / 3
    scale = sum(x * x + y * y for x, y in painting) / 3 / 2
    loss = statistic.loss(vectors(result), target, evaluation=evaluation)
    assert loss.item() == pytest.approx(squared / 2 / scale, rel=1e-5)
    # Another step draws other directions; the same step, the same ones (a resume draws what was drawn).
    assert statistic.loss(vectors(result), target, evaluation=Evaluation(step=8, seed=3)).item() != pytest.approx(loss.item())
    assert statistic.loss(vectors(result), target, evaluation=Evaluation(step=7, seed=3)).item() == loss.item()


def test_sliced_wasserstein_blend_is_the_mixture_of_the_paintings():
    # 3/4 of a painting all 0 and 1/4 of one all 2: sorted 0, 0, 2, 2 weighing 3/8, 3/8, 1/8, 1/8, at
    # levels 3/16, 9/16, 13/16, 15/16. Two positions (levels 1/4, 3/4): quantile 1/4 is 0, and 3/4 is
    # 3/4 of the way from 0 (9/16) to 2 (13/16): 1.5. At exactly those values the loss is 0.
    statistic = SlicedWassersteinStatistic()
    target = sliced_target(statistic, one_channel([0.0, 0.0]), one_channel([2.0, 2.0]), weights=[0.75, 0.25])
    assert statistic.loss(one_channel([0.0, 1.5]), target).item() == pytest.approx(0.0, abs=1e-12)
    assert statistic.loss(one_channel([0.0, 2.0]), target).item() > 0.01
    # Half and half: the mixture 0, 0, 2, 2 itself.
    even = sliced_target(statistic, one_channel([0.0, 0.0]), one_channel([2.0, 2.0]))
    assert statistic.loss(one_channel([0.0, 0.0, 2.0, 2.0]), even).item() == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_ties_share_their_targets_and_masks_weigh_positions():
    # Two equal values are one position to the loss: both sent to the mean of 0 and 4.
    statistic = SlicedWassersteinStatistic()
    target = sliced_target(statistic, one_channel([0.0, 4.0]))
    assert statistic.loss(one_channel([1.0, 1.0]), target).item() == pytest.approx(1.0 / 8.0)  # not (1 + 9) / 2 / 8
    targets = quantile_targets(torch.tensor([[1.0, 1.0, 3.0]]), None, torch.tensor([[0.0, 3.0, 9.0]]), torch.tensor([1, 3, 5]) / 6)
    assert targets.tolist() == [[1.5, 1.5, 9.0]]
    # A mask over the result: the third position weighs nothing (its value is irrelevant, its gradient 0).
    features = one_channel([1.0, 3.0, 100.0]).requires_grad_()
    target = sliced_target(statistic, one_channel([0.0, 10.0]))
    loss = statistic.loss(features, target, torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3))
    assert loss.item() == pytest.approx((0.5 * 1 + 0.5 * 49) / 50)
    loss.backward()
    assert features.grad[..., 2].item() == 0.0


# ---- nearest neighbour -------------------------------------------------------------------------------


def test_nearest_neighbour_pulls_each_position_toward_its_nearest_painting_feature():
    # The painting's vectors (1, 0), (0, 1), (-1, -1) have mean 0. (3, 4) is nearest to (0, 1) by
    # cosine (0.8, against 0.6 and a negative one): its target; (1, 0) is the first vector itself.
    statistic = NearestNeighbourStatistic()
    target = statistic.blend([statistic.target(vectors([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))], [1.0])
    features = vectors([[3.0, 4.0], [1.0, 0.0]]).requires_grad_()
    loss = statistic.loss(features, target)
    assert loss.item() == pytest.approx((1 - 0.8 + 0) / 2, rel=1e-6)
    loss.backward()
    # d(1 - cos)/df for f = (3, 4), t = (0, 1): -(t - cos f/|f|) / |f| = -((0, 1) - 0.8 (0.6, 0.8)) / 5, halved.
    assert torch.allclose(features.grad[0, :, 0, 0], -torch.tensor([-0.48, 0.36]) / 5 / 2, atol=1e-6)


def test_nearest_neighbour_cosine_is_centred_on_the_paintings_mean():
    # Vectors (2, 1), (1, 2): mean (1.5, 1.5), centred (0.5, -0.5) and (-0.5, 0.5). (3, 1) centred is
    # (1.5, -0.5): cos with (0.5, -0.5) is 1 / sqrt(1.25), so the loss is 1 - 2 / sqrt(5).
    statistic = NearestNeighbourStatistic()
    target = statistic.blend([statistic.target(vectors([[2.0, 1.0], [1.0, 2.0]]))], [1.0])
    assert statistic.loss(vectors([[3.0, 1.0]]), target).item() == pytest.approx(1 - 2 / math.sqrt(5), rel=1e-6)


def test_nearest_neighbour_keeps_its_matches_until_the_next_multiple_of_refresh():
    statistic = NearestNeighbourStatistic(refresh=3)
    target = statistic.blend([statistic.target(vectors([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))], [1.0])
    near_first, near_second = vectors([[1.0, 0.1]]), vectors([[0.1, 1.0]])
    assert statistic.loss(near_first, target, evaluation=Evaluation(step=0)).item() < 0.01
    # Steps 1 and 2 keep step 0's match (the first vector), however far the position has moved.
    assert statistic.loss(near_second, target, evaluation=Evaluation(step=2)).item() > 0.5
    # Step 3 matches anew.
    assert statistic.loss(near_second, target, evaluation=Evaluation(step=3)).item() < 0.01
    # Every step with refresh 1, and nothing kept.
    every = NearestNeighbourStatistic()
    fresh = every.blend([every.target(vectors([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))], [1.0])
    every.loss(near_first, fresh, evaluation=Evaluation(step=0))
    assert every.loss(near_second, fresh, evaluation=Evaluation(step=1)).item() < 0.01 and fresh["kept"] == {}


def test_nearest_neighbour_after_a_resume_between_refreshes_matches_anew_then_on_the_schedule():
    # A resumed run has its targets measured afresh (nothing kept): at step 4 of refresh 3 it matches
    # the position it has now, keeps that match at step 5, and matches anew at 6 as an uninterrupted run does.
    statistic = NearestNeighbourStatistic(refresh=3)
    target = statistic.blend([statistic.target(vectors([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))], [1.0])
    near_first, near_second = vectors([[1.0, 0.1]]), vectors([[0.1, 1.0]])
    assert statistic.loss(near_second, target, evaluation=Evaluation(step=4)).item() < 0.01
    assert statistic.loss(near_first, target, evaluation=Evaluation(step=5)).item() > 0.5
    assert statistic.loss(near_first, target, evaluation=Evaluation(step=6)).item() < 0.01
    # Each region's and layer's target keeps its own matches, and each tile (``part``) its own.
    assert set(target["kept"]) == {0}
    statistic.loss(near_second, target, evaluation=Evaluation(step=6, part=2))
    assert set(target["kept"]) == {0, 2}


def test_nearest_neighbour_blend_offers_each_painting_in_proportion_to_its_weight(monkeypatch):
    monkeypatch.setattr(NearestNeighbourStatistic, "CANDIDATES", 4)
    statistic = NearestNeighbourStatistic()
    a, b = torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4)
    a[:, 0], b[:, 1] = 10.0 + torch.arange(4.0), 10.0 + torch.arange(4.0)  # a along x, b along y
    target = statistic.blend([statistic.target(a), statistic.target(b)], [0.75, 0.25])
    assert torch.allclose(target["mean"], torch.tensor([0.75 * 11.5, 0.25 * 11.5]))
    from_a = (target["candidates"][:, 0] > 0).sum().item()  # centred, a's are right of the mean, b's left
    assert (len(target["candidates"]), from_a) == (4, 3)
    # Under the cap, the union of both.
    monkeypatch.setattr(NearestNeighbourStatistic, "CANDIDATES", 100)
    assert len(statistic.blend([statistic.target(a), statistic.target(b)], [0.5, 0.5])["candidates"]) == 8


def test_nearest_neighbour_in_a_region_matches_inside_the_masks():
    # Painting mask: only (0, 1) and (-1, -1) are offered (mean (-0.5, 0); centred (0.5, 1), (-0.5, -1)).
    # Result mask: only the first position counts. (0, 5) centred is (0.5, 5): nearest (0.5, 1).
    statistic = NearestNeighbourStatistic()
    painting = vectors([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    target = statistic.blend([statistic.target(painting, torch.tensor([0.0, 1.0, 1.0]).view(1, 1, 1, 3))], [1.0])
    assert target["candidates"].shape == (2, 2) and torch.allclose(target["mean"], torch.tensor([-0.5, 0.0]))
    features = vectors([[0.0, 5.0], [7.0, -3.0]]).requires_grad_()
    loss = statistic.loss(features, target, torch.tensor([1.0, 0.0]).view(1, 1, 1, 2))
    cosine = (0.5 * 0.5 + 5 * 1) / (math.hypot(0.5, 5) * math.hypot(0.5, 1))
    assert loss.item() == pytest.approx(1 - cosine, rel=1e-6)
    loss.backward()
    assert features.grad[..., 1].abs().sum().item() == 0.0
