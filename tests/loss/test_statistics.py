"""The style statistics (Gram, Wasserstein) against values computed by hand."""

import math

import pytest
import torch

from nst_lightning.loss.functional import gram_matrix
from nst_lightning.loss.statistics import STYLE_STATISTICS, GramStatistic, WassersteinStatistic, trace_sqrtm


def one_channel(values: list[float]) -> torch.Tensor:
    """Features of one channel over len(values) positions, ``[1, 1, 1, M]``."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_wasserstein_of_1d_gaussians_by_hand():
    # Positions 1, 3 (mean 2, standard deviation 1) against 0, 8 (mean 4, standard deviation 4):
    # W2^2 = (2 - 4)^2 + (1 - 4)^2 = 13; the target's mean squared value is 4^2 + 4^2 = 32.
    statistic = WassersteinStatistic()
    target = statistic.blend([statistic.target(one_channel([0.0, 8.0]))], [1.0])
    loss = statistic.loss(one_channel([1.0, 3.0]), target)
    # To 1e-4: the ridge (1e-5 of the target's variance, added to both) moves it by 3e-5.
    assert loss.item() == pytest.approx(13 / 32, rel=1e-4)


def test_wasserstein_is_zero_for_identical_features_and_positive_otherwise():
    statistic = WassersteinStatistic()
    features = torch.randn(1, 6, 5, 7)
    target = statistic.blend([statistic.target(features)], [1.0])
    assert statistic.loss(features, target).item() == pytest.approx(0.0, abs=1e-5)
    assert statistic.loss(features + 0.5, target).item() > 0.01


def test_wasserstein_gradient_is_finite_when_the_covariance_is_singular():
    # 16 channels over 3 positions: both covariances have rank 2 at most.
    statistic = WassersteinStatistic()
    target = statistic.blend([statistic.target(torch.randn(1, 16, 1, 3))], [1.0])
    features = torch.randn(1, 16, 1, 3, requires_grad=True)
    loss = statistic.loss(features, target)
    loss.backward()
    assert math.isfinite(loss.item())
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0
    # A single position (zero covariance) and a constant channel: still finite.
    flat = torch.ones(1, 16, 1, 1, requires_grad=True)
    statistic.loss(flat, target).backward()
    assert torch.isfinite(flat.grad).all()


def test_trace_sqrtm_and_its_gradient_by_hand():
    # diag(4, 9): trace of the square root 2 + 3 = 5; gradient A^(-1/2) / 2 = diag(1/4, 1/6).
    matrix = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64)).requires_grad_()
    value = trace_sqrtm(matrix)
    value.backward()
    assert value.item() == pytest.approx(5.0)
    assert torch.allclose(matrix.grad, torch.diag(torch.tensor([0.25, 1 / 6], dtype=torch.float64)))


def test_wasserstein_blends_the_mixture_of_the_styles():
    # Half of style a (all 0) and half of style b (all 2) is the mixture {0, 2}: mean 1, variance 1.
    statistic = WassersteinStatistic()
    a, b = statistic.target(one_channel([0.0, 0.0])), statistic.target(one_channel([2.0, 2.0]))
    blended = statistic.blend([a, b], [0.5, 0.5])
    assert blended["mean"].item() == pytest.approx(1.0)
    assert blended["second_moment"].item() == pytest.approx(2.0)  # E[f^2] = (0 + 4) / 2
    assert blended["covariance_sqrt"].item() == pytest.approx(1.0, rel=1e-4)  # the mixture's standard deviation
    assert statistic.loss(one_channel([0.0, 2.0]), blended).item() == pytest.approx(0.0, abs=1e-6)


def test_gram_statistic_is_todays_gram_loss_and_blends_linearly():
    statistic = GramStatistic()
    a, b = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    blended = statistic.blend([statistic.target(a), statistic.target(b)], [0.25, 0.75])
    assert torch.allclose(blended, 0.25 * gram_matrix(a) + 0.75 * gram_matrix(b))
    # Ones over 2x2 positions: Gram = 4 / 4 = 1. Against a target Gram of 2: (1 - 2)^2 / 2^2 = 0.25.
    assert statistic.loss(torch.ones(1, 1, 2, 2), torch.full((1, 1, 1), 2.0)).item() == 0.25


@pytest.mark.parametrize("name", sorted(STYLE_STATISTICS))
def test_weight_maps_restrict_the_statistic_to_their_region(name):
    statistic = STYLE_STATISTICS[name]()
    features = torch.randn(1, 3, 4, 6)
    uniform = torch.full((1, 1, 4, 6), 0.3)
    left = torch.zeros(1, 1, 4, 6)
    left[..., :3] = 1.0

    def close(x, y):
        if isinstance(x, dict):  # a None (equal weights) only where the other has None too
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        return (x is None and y is None) or torch.allclose(x, y, atol=1e-5)

    # A uniform weight map is no weight map; a 0/1 mask gives the statistic of the masked positions.
    assert close(statistic.target(features, uniform), statistic.target(features))
    assert close(statistic.target(features, left), statistic.target(features[..., :3].contiguous()))
    target = statistic.blend([statistic.target(features[..., :3].contiguous())], [1.0])
    assert statistic.loss(features, target, left).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(STYLE_STATISTICS))
def test_losses_are_dimensionless(name):
    # The same loss whatever the activation scale of the VGG19 weights (255x for the Caffe ones).
    statistic = STYLE_STATISTICS[name]()
    x, y = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    small = statistic.loss(x, statistic.blend([statistic.target(y)], [1.0]))
    large = statistic.loss(255 * x, statistic.blend([statistic.target(255 * y)], [1.0]))
    assert large.item() == pytest.approx(small.item(), rel=1e-4)


@pytest.mark.parametrize("name", sorted(STYLE_STATISTICS))
def test_fp32_under_autocast(name):
    statistic = STYLE_STATISTICS[name]()
    target = statistic.blend([statistic.target(torch.randn(1, 4, 8, 8))], [1.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = statistic.loss(torch.randn(1, 4, 8, 8, dtype=torch.bfloat16), target)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
