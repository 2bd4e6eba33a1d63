"""Colour preservation of Gatys et al. (2017), "Controlling Perceptual Factors in Neural Style
Transfer" (colour control), as pure functions of ``[N, 3, H, W]`` images in [0, 1].

- ``luminance``: transfer style on the luminance channel only and keep the content's colours. The
  paper uses YIQ; the style's luminance is first matched to the content's mean and variance so that
  the painting's overall brightness and contrast do not override the photo's.
- ``histogram``: recolour the style image so that its colour mean and covariance equal the
  content's (the linear transform ``A = S_c^{1/2} S_s^{-1/2}`` the paper takes from Image Analogies),
  then transfer style as usual.

All functions compute in fp32.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

ColorMode = Literal["none", "luminance", "histogram"]

# NTSC 1953 RGB -> YIQ, the colour space Gatys et al. (2017) use for luminance-only transfer.
RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ]
)
# The exact inverse (not the rounded textbook one), so that RGB -> YIQ -> RGB is the identity.
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ.double()).float()


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image.device), image.float())


def rgb_to_yiq(image: Tensor) -> Tensor:
    return _apply(RGB_TO_YIQ, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    return _apply(YIQ_TO_RGB, image)


def luminance(image: Tensor) -> Tensor:
    """The Y channel, ``[N, 1, H, W]``."""
    return rgb_to_yiq(image)[:, :1]


def gray(image: Tensor) -> Tensor:
    """The luminance as a grey RGB image (Y in all three channels): what VGG19 sees in luminance
    mode, since it takes three channels."""
    return luminance(image).expand(-1, 3, -1, -1)


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Grey RGB image of ``style``'s luminance shifted and scaled to ``content``'s luminance mean and
    standard deviation, as Gatys et al. (2017) do: ``L_s' = sd_c / sd_s (L_s - mu_s) + mu_c``."""
    ys, yc = luminance(style), luminance(content)
    matched = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-5)) + yc.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1)


def with_chroma_of(image: Tensor, colors: Tensor) -> Tensor:
    """``image``'s luminance with ``colors``' I and Q channels (same size): the output of
    luminance-only transfer, which keeps the content's colours."""
    yiq = torch.cat([luminance(image), rgb_to_yiq(colors)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _mean_cov(image: Tensor) -> tuple[Tensor, Tensor]:
    pixels = image.float().permute(1, 0, 2, 3).reshape(3, -1)  # [3, N*H*W]
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    return mean, centred @ centred.T / pixels.shape[1]


def _sqrtm(matrix: Tensor, power: float, eps: float) -> Tensor:
    """``matrix ** power`` of a symmetric positive semi-definite 3x3 matrix, by eigendecomposition;
    eigenvalues are floored at ``eps`` so that a grey (rank-deficient) image does not blow up."""
    values, vectors = torch.linalg.eigh(matrix.double())
    return (vectors * values.clamp_min(eps).pow(power)) @ vectors.T


def match_color_histogram(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """``source`` recoloured so that its RGB mean and covariance are ``target``'s.

    ``x' = A (x - mu_s) + mu_t`` with ``A = S_t^{1/2} S_s^{-1/2}`` (Gatys et al. 2017,
    the Image Analogies variant; its Cholesky variant gives the same statistics but a rotated
    colour mapping). Clamped to [0, 1] afterwards, which moves the statistics slightly when the
    target's colours are near the gamut's edge.
    """
    return recolor(source, *_mean_cov(target), eps=eps)


def blended_color_statistics(images: list[Tensor], weights: list[float]) -> tuple[Tensor, Tensor]:
    """The RGB mean ``[3, 1]`` and covariance ``[3, 3]`` of the mixture of ``images``' pixels in
    proportions ``weights`` (summing to 1): a blend of paintings has the colours of all of them."""
    stats = [_mean_cov(image) for image in images]
    mean = sum(w * m for w, (m, _) in zip(weights, stats))
    second = sum(w * (c + m @ m.T) for w, (m, c) in zip(weights, stats))
    return mean, second - mean @ mean.T


def recolor(source: Tensor, mean: Tensor, cov: Tensor, eps: float = 1e-5) -> Tensor:
    """``source`` (``[N, 3, H, W]`` in [0, 1]) mapped affinely to the RGB ``mean`` and ``cov``,
    clamped to [0, 1] (``match_color_histogram``'s transform)."""
    mu_s, cov_s = _mean_cov(source)
    transform = (_sqrtm(cov, 0.5, eps) @ _sqrtm(cov_s, -0.5, eps)).float()
    n, _, h, w = source.shape
    pixels = source.float().permute(1, 0, 2, 3).reshape(3, -1)
    out = transform.to(source.device) @ (pixels - mu_s) + mean.float().to(source.device)
    return out.reshape(3, n, h, w).permute(1, 0, 2, 3).clamp(0, 1)
