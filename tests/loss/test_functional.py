"""The loss functions against values computed by hand."""

import pytest
import torch

from nst_lightning.loss.functional import (
    content_loss,
    gram_matrix,
    relative_squared_error,
    style_loss,
    temporal_loss,
    total_variation_loss,
)


def test_gram_of_known_tensor():
    # Two channels over two positions: rows [1, 2] and [3, 4].
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by the 2 positions.
    expected = torch.tensor([[[2.5, 5.5], [5.5, 12.5]]])
    assert torch.equal(gram_matrix(features), expected)


def test_gram_is_fp32_and_finite_for_fp16_features():
    # 300^2 * 4096 positions = 3.7e8, far beyond fp16's 65504: an fp16 Gram would be inf.
    features = torch.full((1, 2, 64, 64), 300.0, dtype=torch.float16)
    gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, torch.full((1, 2, 2), 90000.0))


def test_gram_under_autocast_stays_fp32():
    features = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, gram_matrix(features))


def test_relative_squared_error_by_hand():
    # ((1-1)^2 + (2-1)^2) / (1^2 + 1^2) = 1/2
    assert relative_squared_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])).item() == 0.5


def test_relative_error_is_invariant_to_activation_scale():
    # Why the losses are normalised: weights whose activations are 255x larger give the same loss.
    x, y = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    assert content_loss(255 * x, 255 * y).item() == pytest.approx(content_loss(x, y).item(), rel=1e-5)
    assert style_loss(255 * x, gram_matrix(255 * y)).item() == pytest.approx(
        style_loss(x, gram_matrix(y)).item(), rel=1e-4
    )


def test_losses_are_zero_at_the_target():
    features = torch.randn(1, 8, 5, 5)
    assert content_loss(features, features.clone()).item() == 0.0
    assert style_loss(features, gram_matrix(features)).item() == 0.0


def test_style_loss_by_hand():
    # Ones over 2x2 positions: Gram = 4 / 4 = 1. Against a target Gram of 2: (1 - 2)^2 / 2^2 = 0.25.
    assert style_loss(torch.ones(1, 1, 2, 2), torch.full((1, 1, 1), 2.0)).item() == 0.25


def test_total_variation_of_checkerboard_and_ramp():
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2
    image = checker.float().expand(1, 3, 4, 4)
    assert total_variation_loss(image).item() == 2.0  # every neighbour differs by 1, both ways
    ramp = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]).view(1, 1, 2, 3)
    assert total_variation_loss(ramp).item() == 1.0  # dx = 1 everywhere, dy = 0
    assert total_variation_loss(torch.full((1, 3, 5, 5), 0.7)).item() == 0.0


def test_temporal_loss_by_hand():
    # A 1x3x2x2 image, the previous frame 0.5 below it in the left column and equal in the right one.
    image = torch.tensor([[[[1.0, 0.2], [1.0, 0.4]]]]).repeat(1, 3, 1, 1)
    previous = image.clone()
    previous[..., 0] -= 0.5
    everywhere = torch.ones(1, 1, 2, 2)
    # 6 differences (3 channels x 2 rows) of 0.25 over D = 12 values.
    assert temporal_loss(image, previous, everywhere).item() == 6 * 0.25 / 12
    # Pixels the flow cannot be trusted at do not count, but D stays the image's size (Ruder et al., Eq. 7).
    top_only = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert temporal_loss(image, previous, top_only).item() == 3 * 0.25 / 12
    assert temporal_loss(image, image, everywhere).item() == 0.0
    # Two earlier frames (long-term): the sum of their terms.
    both = temporal_loss(image, torch.cat([previous, image]), torch.cat([everywhere, everywhere]))
    assert both.item() == temporal_loss(image, previous, everywhere).item()
    both = temporal_loss(image, torch.cat([previous, previous]), torch.cat([top_only, everywhere]))
    assert both.item() == (3 + 6) * 0.25 / 12
    # fp32 whatever the inputs: bf16 images give the same value.
    assert temporal_loss(image.bfloat16(), previous.bfloat16(), everywhere).dtype == torch.float32


def test_gram_gradient_by_hand():
    # G = F F^T / M with rows f_0 = [1, 2], f_1 = [3, 4] over M = 2 positions.
    # d G[0,0] / d f_0 = 2 f_0 / M = [1, 2]; d G[0,0] / d f_1 = 0.
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2).requires_grad_()
    gram_matrix(features)[0, 0, 0].backward()
    assert torch.equal(features.grad.view(2, 2), torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    # d G[0,1] / d f_0 = f_1 / M = [1.5, 2], d G[0,1] / d f_1 = f_0 / M = [0.5, 1].
    features.grad = None
    gram_matrix(features)[0, 0, 1].backward()
    assert torch.equal(features.grad.view(2, 2), torch.tensor([[1.5, 2.0], [0.5, 1.0]]))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_matches_autograd_and_keeps_the_gradient_layout(memory_format):
    torch.manual_seed(0)
    base = torch.randn(2, 5, 6, 7)
    weights = torch.randn(2, 5, 5)
    features = base.clone(memory_format=memory_format).requires_grad_()
    (gram_matrix(features) * weights).sum().backward()
    reference = base.clone().requires_grad_()
    flat = reference.reshape(2, 5, 42)
    expected = flat @ flat.transpose(1, 2) / 42
    (expected * weights).sum().backward()
    assert torch.allclose(gram_matrix(features), expected, atol=1e-5)
    assert torch.allclose(features.grad, reference.grad, atol=1e-5)
    # The gradient comes back laid out like the feature map (no copy at the tap's add).
    assert features.grad.is_contiguous(memory_format=memory_format)


def test_gram_of_bf16_channels_last_features_is_fp32_with_a_bf16_channels_last_gradient():
    features = torch.randn(1, 4, 3, 3).to(torch.bfloat16, memory_format=torch.channels_last).requires_grad_()
    gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    gram.sum().backward()
    assert features.grad.dtype == torch.bfloat16
    assert features.grad.is_contiguous(memory_format=torch.channels_last)
    flat = features.detach().float().reshape(1, 4, 9)
    assert torch.allclose(gram, flat @ flat.transpose(1, 2) / 9, atol=1e-4)
