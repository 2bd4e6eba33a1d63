"""Where the optimisation starts (``--model.init``): the photo itself, uniform noise (the paper's
Fig. 2), or a given image (``--model.init_image``: a file, or a checkpoint's image), at the size of
the first stage."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def initial_image(init: str, content: Tensor, start_image: Optional[Tensor] = None) -> Tensor:
    """The first image for ``content`` (``[K, 3, H, W]``): its copy, noise, or ``start_image`` resized."""
    if init == "content":
        return content.clone()
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
