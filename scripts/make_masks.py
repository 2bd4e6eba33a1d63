"""Makes ``nst_lightning/assets/tubingen_sky.png``, the sky of the built-in Tübingen photo, for
``configs/regions.yaml`` (``builtin:tubingen_sky``; ``invert: true`` gives the town and the river).

How: a pixel is sky-coloured when it is clearly blue (blue above red by 40 and above green by 10)
and bright enough (blue over 120); the sky is the sky-coloured pixels connected to the top edge
(so the river's blue reflections are left out), with a 3x3 median filter
over the edge. Thin branches of the tree on the left stay out of it. Run from the repository root:

    python scripts/make_masks.py
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ASSETS = Path(__file__).resolve().parents[1] / "nst_lightning" / "assets"


def sky_mask(photo: np.ndarray) -> np.ndarray:
    r, g, b = (photo[..., i].astype(int) for i in range(3))
    skyish = (b - r > 40) & (b - g > 10) & (b > 120)
    height, width = skyish.shape
    sky = np.zeros_like(skyish)
    queue = deque((0, x) for x in range(width) if skyish[0, x])
    for y, x in queue:
        sky[y, x] = True
    while queue:  # flood fill from the top edge
        y, x = queue.popleft()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < height and 0 <= nx < width and skyish[ny, nx] and not sky[ny, nx]:
                sky[ny, nx] = True
                queue.append((ny, nx))
    image = Image.fromarray((sky * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
    return np.asarray(image) > 127


def main() -> None:
    photo = np.asarray(Image.open(ASSETS / "tubingen.jpg").convert("RGB"))
    sky = sky_mask(photo)
    Image.fromarray(sky).convert("1").save(ASSETS / "tubingen_sky.png", optimize=True)
    print(f"{ASSETS / 'tubingen_sky.png'}: {sky.mean():.1%} of the photo is sky")


if __name__ == "__main__":
    main()
