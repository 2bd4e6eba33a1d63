"""What the optimizer is given for an image, and how its steps reach the image.

``Pixels``: the image itself, as Gatys et al. (2015) optimise it. ``LaplacianPyramid``: the image's
steps in the coordinates of a Laplacian pyramid of ``levels`` bands (``pyramid.py``), as STROTSS
(Kolkin et al. 2019) and NNST (Kolkin et al. 2022) optimise theirs. Adam moves every coordinate by
about its step size whatever its gradient's scale, so a coarse band's coordinate moves a smooth blob
``2^k`` pixels wide as far as a pixel moves alone: the large shapes, which pixel steps form only
slowly (their gradient is spread thinly over many pixels), form in few steps.

The image stays the run's state (its checkpoint, its average, what every callback reads); the
optimizer holds the pyramid's coordinates of one step at a time. They are zero before each step, the
image's gradient is brought to them (``synthesis``'s adjoint) once the step's gradient is complete,
and after the optimizer's step their synthesis is added to the image and they are zeroed again. This
is optimising the bands themselves: neither Adam nor L-BFGS reads a parameter's value, only its
gradients and their own state, so bands that synthesise the image would take the same steps, and the
image is never re-synthesised from them (no rounding accumulates, and a checkpoint needs the image
and the optimizer's state only).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from nst_lightning.parameterisation.pyramid import adjoint, band_sizes, bands, pack, packed_length, synthesis

# How coarse-to-fine carries an optimizer's per-coordinate state (Adam's moments, ``[K, C, h, w]``) to a new
# size: ``scale.multiscale.resize_adam_state(state, size, pixel_ratio)``, which ``resize_state`` is given.
StateResize = Callable[[dict, tuple[int, int], float], None]


class Pixels:
    """The image itself is the optimizer's parameter."""

    def optimised(self, image: Tensor) -> Tensor:
        """The tensor the optimizer is given."""
        return image

    def state_shape(self, image_shape: torch.Size) -> tuple[int, ...]:
        """The shape of the optimizer's per-coordinate state (Adam's moments) for an image of this shape."""
        return tuple(image_shape)

    def gradient_done(self, image: Tensor) -> None:
        """The step's whole gradient is in ``image.grad``, where the optimizer reads it; contiguous, as
        L-BFGS's flat view needs it (under autocast it can come back channels-last)."""
        if image.grad is not None and not image.grad.is_contiguous():
            image.grad = image.grad.contiguous()

    @torch.no_grad()
    def step_done(self, image: Tensor, clamp: bool) -> None:
        """The optimizer has moved the image itself; ``clamp``: back to valid pixels, [0, 1] (after each
        Adam step; not for L-BFGS, whose curvature estimate a projection would corrupt)."""
        if clamp:
            image.clamp_(0, 1)

    def resize_state(self, optimizer: Any, image: Tensor, old_size: tuple[int, int], pixel_ratio: float, resize: StateResize) -> None:
        """Coarse-to-fine has resized ``image`` (in place) from ``old_size``: its optimizer state too."""
        if image in optimizer.state:
            resize(optimizer.state[image], tuple(image.shape[-2:]), pixel_ratio)


class LaplacianPyramid:
    """The image's steps in the coordinates of a Laplacian pyramid of ``levels`` bands; with ``gain``, band
    ``k``'s coordinates stand for ``gain^k`` times its blobs, so that Adam, which moves every coordinate by
    about its step size, moves band ``k`` ``gain^k`` times as far as the finest (1: every band alike)."""

    def __init__(self, levels: int, gain: float = 1.0) -> None:
        self.levels, self.gain = levels, gain
        self.coordinates: Optional[nn.Parameter] = None

    def _gained(self, packed: Tensor, size: tuple[int, int]) -> Tensor:
        """``packed`` with band ``k`` times ``gain^k``: the synthesis's scale, and (it is diagonal) its adjoint's."""
        if self.gain == 1.0:
            return packed
        return pack([band * self.gain**k for k, band in enumerate(bands(packed, size, self.levels))])

    def optimised(self, image: Tensor) -> nn.Parameter:
        self.coordinates = nn.Parameter(image.new_zeros(self.state_shape(image.shape)))
        return self.coordinates

    def state_shape(self, image_shape: torch.Size) -> tuple[int, ...]:
        *batch, height, width = image_shape
        return (*batch, packed_length(height, width, self.levels))

    def gradient_done(self, image: Tensor) -> None:
        """``image.grad`` to the coordinates' gradient (then none left on the image, which no optimizer zeroes)."""
        if image.grad is None:
            return
        gradient = self._gained(adjoint(image.grad.float(), self.levels), tuple(image.shape[-2:]))
        grad = self.coordinates.grad
        self.coordinates.grad = gradient if grad is None else grad + gradient
        image.grad = None

    @torch.no_grad()
    def resize_state(self, optimizer: Any, image: Tensor, old_size: tuple[int, int], pixel_ratio: float, resize: StateResize) -> None:
        """Coarse-to-fine has resized ``image``: the coordinates take its new size (in place, so that the
        optimizer keeps them), and the optimizer's state band by band, each to its band's new size. A
        band's gradient sums its blobs' pixels' gradients, and a blob is ``2^k`` pixels wide at any
        size, so it scales with the pixels' as ``resize`` expects."""
        size = tuple(image.shape[-2:])
        coordinates = self.coordinates
        if coordinates is None or coordinates.shape[-1] == packed_length(*size, self.levels):
            return  # already made at this size (a new optimizer's, for L-BFGS)
        state = optimizer.state.get(coordinates, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                moved = []
                for band, band_size in zip(bands(state[key], old_size, self.levels), band_sizes(*size, self.levels)):
                    part = {key: band}
                    resize(part, band_size, pixel_ratio)
                    moved.append(part[key])
                state[key] = pack(moved)
        coordinates.data = coordinates.new_zeros(self.state_shape(image.shape))

    @torch.no_grad()
    def step_done(self, image: Tensor, clamp: bool) -> None:
        """Add the step the optimizer took to the image (``clamp``: then back to valid pixels, [0, 1],
        which is the projection of the bands too: the clamp's change is the finest band's), and start
        the next step from zero."""
        size = tuple(image.shape[-2:])
        image += synthesis(self._gained(self.coordinates, size), size, self.levels).to(image.dtype)
        self.coordinates.zero_()
        if clamp:
            image.clamp_(0, 1)


Parameterisation = Union[Pixels, LaplacianPyramid]


def make_parameterisation(name: str, levels: int, gain: float = 1.0) -> Parameterisation:
    """``--model.parameterisation``'s ``pixels`` or ``laplacian_pyramid`` (of ``levels`` bands, each ``gain``
    times the next finer one's step)."""
    return LaplacianPyramid(levels, gain) if name == "laplacian_pyramid" else Pixels()
