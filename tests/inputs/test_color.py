"""Colour preservation (Gatys et al. 2017) against values computed by hand."""

import torch

from nst_lightning.inputs.color import (
    gray,
    match_color_histogram,
    match_luminance,
    rgb_to_yiq,
    with_chroma_of,
    yiq_to_rgb,
)


def pixels(*rgb: tuple[float, float, float]) -> torch.Tensor:
    """A 1 x len(rgb) image ``[1, 3, 1, W]`` with the given pixels."""
    return torch.tensor(rgb).T.reshape(1, 3, 1, len(rgb))


def test_yiq_of_white_and_red():
    yiq = rgb_to_yiq(pixels((1, 1, 1), (1, 0, 0)))
    # White has full luminance and no chroma: each chroma row of the matrix sums to 0.
    assert torch.allclose(yiq[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    # Red is the first column of the NTSC matrix.
    assert torch.allclose(yiq[0, :, 0, 1], torch.tensor([0.299, 0.596, 0.211]), atol=1e-6)


def test_yiq_round_trip_is_the_identity():
    image = torch.rand(2, 3, 5, 4)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)


def test_gray_puts_the_luminance_in_all_three_channels():
    out = gray(pixels((1, 0, 0), (0, 1, 0)))
    assert out.shape == (1, 3, 1, 2)
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.299))
    assert torch.allclose(out[0, :, 0, 1], torch.full((3,), 0.587))


def test_match_luminance_takes_the_content_mean_and_spread():
    # Grey pixels, so that Y is the value itself. Style Y = 0.2, 0.4 (mean 0.3); content Y = 0.5, 0.9
    # (mean 0.7, twice the spread): (0.2 - 0.3) * 2 + 0.7 = 0.5 and (0.4 - 0.3) * 2 + 0.7 = 0.9.
    style = pixels((0.2, 0.2, 0.2), (0.4, 0.4, 0.4))
    content = pixels((0.5, 0.5, 0.5), (0.9, 0.9, 0.9))
    matched = match_luminance(style, content)
    assert torch.allclose(matched[0, :, 0, 0], torch.full((3,), 0.5), atol=1e-5)
    assert torch.allclose(matched[0, :, 0, 1], torch.full((3,), 0.9), atol=1e-5)


def test_with_chroma_of_keeps_the_luminance_and_takes_the_colours():
    # colours (0.6, 0.5, 0.4) have Y = 0.1794 + 0.2935 + 0.0456 = 0.5185. A grey 0.5 image has Y = 0.5,
    # and a pure change of Y moves R, G and B alike (the first column of YIQ->RGB is all ones), so
    # the result is the colours minus 0.0185: (0.5815, 0.4815, 0.3815).
    out = with_chroma_of(pixels((0.5, 0.5, 0.5)), pixels((0.6, 0.5, 0.4)))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.5815, 0.4815, 0.3815]), atol=1e-4)


def test_histogram_matching_by_hand():
    # Source: R, G, B uncorrelated (each +-0.1, +-0.1, +-0.05 around its mean in a balanced pattern),
    # covariance diag(0.01, 0.01, 0.0025). Target: the same pattern with R's spread doubled, G's halved,
    # B's kept and other means: covariance diag(0.04, 0.0025, 0.0025), mean (0.5, 0.3, 0.7). Then
    # A = S_t^1/2 S_s^-1/2 = diag(2, 0.5, 1) and the recoloured source is the target, pixel for pixel.
    source = pixels((0.4, 0.4, 0.45), (0.6, 0.4, 0.55), (0.4, 0.6, 0.55), (0.6, 0.6, 0.45))
    target = pixels((0.3, 0.25, 0.65), (0.7, 0.25, 0.75), (0.3, 0.35, 0.75), (0.7, 0.35, 0.65))
    assert torch.allclose(match_color_histogram(source, target), target, atol=1e-5)


def test_histogram_matching_gives_the_target_statistics_and_survives_a_grey_source():
    torch.manual_seed(0)
    source = torch.rand(1, 3, 16, 16) * 0.3 + 0.2
    target = torch.rand(1, 3, 8, 8) * 0.2 + torch.tensor([0.6, 0.3, 0.4]).view(1, 3, 1, 1)
    out = match_color_histogram(source, target)
    flat = lambda x: x.permute(1, 0, 2, 3).reshape(3, -1)  # noqa: E731
    assert torch.allclose(flat(out).mean(1), flat(target).mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(flat(out), correction=0), torch.cov(flat(target), correction=0), atol=1e-5)
    # A grey source has a singular covariance: the eigenvalue floor keeps the result finite.
    grey = match_color_histogram(torch.full((1, 3, 4, 4), 0.5), target)
    assert torch.isfinite(grey).all() and grey.min() >= 0 and grey.max() <= 1
