"""Where the optimisation starts (``--model.init``): the photo itself, the photo in the painting's
colours, uniform noise (the paper's Fig. 2), or a given image (``--model.init_image``: a file, or a
checkpoint's image), at the size of the first stage."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_lightning.inputs.color import blended_color_statistics, recolor


def initial_image(
    init: str, content: Tensor, start_image: Optional[Tensor] = None, members: Optional[list] = None, color_strength: float = 1.0
) -> Tensor:
    """The first image for ``content`` (``[K, 3, H, W]``): its copy, its copy recoloured, noise, or
    ``start_image`` resized. ``members``, for ``painting_colors``: per photo, ``(photo, paintings,
    blend weights)`` as ``datamodule.members`` gives them; ``color_strength``, how far toward the
    recoloured photo the start goes (a straight line from the photo, 1: all the way)."""
    if init == "content":
        return content.clone()
    if init == "painting_colors":
        # Not in Gatys et al. (2015). The photo mapped affinely to the painting's RGB mean and
        # covariance (the colour transfer of Gatys et al. 2017, run the other way): the colours are
        # what the lowest style layers weigh most, and what Adam's first tens of steps spend their
        # pixel moves on; the photo's structure, all the content loss sees, is unchanged.
        # Measured in docs/lab/quality.md, "Starting in the painting's colours".
        # The full recolouring also moves the photo's contrast to the painting's, which is what the
        # content loss sees: half way keeps more of it (docs/lab/quality.md, "the new configs/quick.yaml").
        recoloured = torch.cat([recolor(photo, *blended_color_statistics(paintings, _shares(blend, len(paintings))))
                                for photo, paintings, blend in members])
        return recoloured if color_strength == 1.0 else torch.lerp(content, recoloured, color_strength)
    if init == "noise":
        # Each image of a batch gets the noise it would get alone (the same draw).
        state = torch.get_rng_state()
        noise = []
        for k in range(content.shape[0]):
            torch.set_rng_state(state)
            noise.append(torch.rand_like(content[k : k + 1]))
        return torch.cat(noise)
    # Resized to the content's exact shape: an init image of another aspect is stretched.
    return F.interpolate(start_image, size=content.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)


def start_of(init: str, preserve_colors: str, regions: Any) -> str:
    """The start a run takes for ``--model.init``: ``painting_colors`` starts in the colours the style
    targets ask for, which with ``preserve_colors`` are the photo's own (the painting recoloured to
    them, or luminance only) and with regions differ from region to region: the photo itself, then, so
    that a config starting from the painting's colours (``configs/quick.yaml``) layers under both."""
    if init == "painting_colors" and (preserve_colors != "none" or regions):
        return "content"
    return init


def _shares(weights: Optional[list[float]], count: int) -> list[float]:
    weights = list(weights) if weights else [1.0] * count
    return [w / sum(weights) for w in weights]
