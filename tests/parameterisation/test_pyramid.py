"""The Laplacian pyramid's synthesis and adjoint by hand, and its steps reaching the image."""

from __future__ import annotations

import torch

from nst_lightning.parameterisation.coordinates import LaplacianPyramid, Pixels
from nst_lightning.parameterisation.pyramid import adjoint, band_sizes, bands, pack, packed_length, synthesis


def test_band_sizes_halve_each_side_rounding_up():
    assert band_sizes(7, 5, 3) == [(7, 5), (4, 3), (2, 2)]
    assert packed_length(7, 5, 3) == 35 + 12 + 4


def test_synthesis_adds_each_band_upsampled_bilinearly_by_hand():
    # A 4x4 image of two bands: a coarse 2x2 band holding 1 at its top left, a fine band holding 0.5 at
    # its bottom right. Bilinear upsampling by 2 (pixel centres, edges clamped) takes [1, 0] to
    # [1, 0.75, 0.25, 0] along each side, so the coarse 1 becomes the outer product of that profile.
    fine = torch.zeros(1, 1, 4, 4)
    fine[..., 3, 3] = 0.5
    coarse = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    packed = torch.cat([fine.flatten(-2), coarse.flatten(-2)], dim=-1)
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0])
    expected = torch.outer(profile, profile)
    expected[3, 3] += 0.5
    assert torch.equal(synthesis(packed, (4, 4), 2)[0, 0], expected)
    assert [tuple(b.shape) for b in bands(packed, (4, 4), 2)] == [(1, 1, 4, 4), (1, 1, 2, 2)]


def test_one_level_is_the_pixels_themselves():
    image = torch.rand(2, 3, 5, 7)
    assert torch.equal(synthesis(image.flatten(-2), (5, 7), 1), image)
    assert torch.equal(adjoint(image, 1), image.flatten(-2))


def test_the_adjoint_is_the_synthesis_transposed():
    # <P c, g> = <c, P^T g> for any c and g, on sides that do not halve evenly.
    torch.manual_seed(0)
    coordinates, gradient = torch.randn(2, 3, packed_length(13, 9, 4)), torch.randn(2, 3, 13, 9)
    left = (synthesis(coordinates, (13, 9), 4) * gradient).sum()
    right = (coordinates * adjoint(gradient, 4)).sum()
    assert torch.allclose(left, right, rtol=1e-5)


def test_the_gradient_reaches_the_coordinates_and_the_step_reaches_the_image_exactly():
    torch.manual_seed(0)
    image = torch.nn.Parameter(torch.rand(1, 3, 10, 12))
    pyramid = LaplacianPyramid(3)
    coordinates = pyramid.optimised(image)
    assert coordinates.shape == (1, 3, packed_length(10, 12, 3)) and not coordinates.any()
    (image * torch.arange(120.0).view(1, 1, 10, 12)).sum().backward()  # d/dimage: the ramp
    ramp = image.grad.clone()
    pyramid.gradient_done(image)
    assert image.grad is None  # no optimizer zeroes the image's gradient: it is taken, not left to add up
    assert torch.equal(coordinates.grad, adjoint(ramp, 3))
    # Each band's gradient sums to the image's: bilinear weights sum to 1, so every pixel's gradient
    # reaches each band whole (a coarse coordinate moves a blob of pixels, and feels all of theirs).
    assert torch.allclose(coordinates.grad.sum(), ramp.sum() * 3, rtol=1e-5)
    before = image.detach().clone()
    step = torch.randn_like(coordinates)
    with torch.no_grad():
        coordinates.copy_(step)
    pyramid.step_done(image, clamp=False)
    assert torch.equal(image.detach(), before + synthesis(step, (10, 12), 3)) and not coordinates.any()
    pyramid.step_done(image, clamp=False)  # a step of zero leaves the image bit for bit: it is never re-synthesised
    assert torch.equal(image.detach(), before + synthesis(step, (10, 12), 3))


def test_pixels_are_the_image_itself():
    image = torch.nn.Parameter(torch.rand(1, 3, 4, 4))
    pixels = Pixels()
    assert pixels.optimised(image) is image and pixels.state_shape(image.shape) == (1, 3, 4, 4)


def test_a_band_gain_scales_each_bands_gradient_and_step_by_its_power():
    # Band k stands for gain^k times its blobs: its gradient and its step to the image carry gain^k alike
    # (the synthesis scaled, and its adjoint), so Adam's step of about lr moves band k gain^k as far.
    torch.manual_seed(0)
    image = torch.nn.Parameter(torch.rand(1, 3, 10, 12))
    pyramid = LaplacianPyramid(3, gain=2.0)
    coordinates = pyramid.optimised(image)
    (image * torch.arange(120.0).view(1, 1, 10, 12)).sum().backward()
    ramp = image.grad.clone()
    pyramid.gradient_done(image)

    def gained(packed):
        return pack([band * 2.0**k for k, band in enumerate(bands(packed, (10, 12), 3))])

    assert torch.allclose(coordinates.grad, gained(adjoint(ramp, 3)))
    before = image.detach().clone()
    step = torch.randn_like(coordinates)
    with torch.no_grad():
        coordinates.copy_(step)
    pyramid.step_done(image, clamp=False)
    assert torch.allclose(image.detach(), before + synthesis(gained(step), (10, 12), 3), atol=1e-6)
