"""Hard cuts in a clip: where one shot ends and the next begins.

Across a cut the optical flow matches unrelated images, so the temporal loss of Ruder et al. 2016
(which warps the previous result onto the current frame) would drag the last shot's strokes into the
new one; a clip is therefore stylized shot by shot, each shot's first frame on its own.

A cut is where consecutive frames' colour histograms differ: per RGB channel a 32-bin histogram,
normalized, compared by the Bhattacharyya distance (``cv2.compareHist(..., HISTCMP_BHATTACHARYYA)``,
0 for equal histograms, 1 for disjoint ones), averaged over the 3 channels. Histograms ignore where
colours are, so a pan or a moving object changes them little and a new scene changes them a lot.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from nst_lightning.utilities.errors import UserError

BINS = 32
# Measured on 224 x 160 crops of the built-in images: a pan at 1-20 px per frame stays below 0.08, at
# 60 px (a quarter of the width per frame) below 0.2, and Sintel's consecutive frames (motion to 32 px,
# 1024 x 436) below 0.08; a cut between any two of the four built-in images is 0.35 or more.
DEFAULT_THRESHOLD = 0.25


def _histograms(frame: np.ndarray, index: int) -> list[np.ndarray]:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise UserError(
            f"frame {index}: a frame must be an H x W x 3 uint8 RGB array, not {getattr(frame, 'shape', type(frame).__name__)}"
        )
    frame = np.ascontiguousarray(frame)
    histograms = []
    for channel in range(3):
        histogram = cv2.calcHist([frame], [channel], None, [BINS], [0, 256])
        histograms.append(histogram / max(float(histogram.sum()), 1.0))
    return histograms


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The mean over R, G, B of the Bhattacharyya distance of two frames' 32-bin histograms, in [0, 1]."""
    return _distance(_histograms(a, 0), _histograms(b, 1))


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([cv2.compareHist(x, y, cv2.HISTCMP_BHATTACHARYYA) for x, y in zip(a, b)]))


def find_cuts(frames: Iterable[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> list[int]:
    """The indices t (ascending, never 0) where a hard cut starts: frame t's histograms are farther than
    ``threshold`` from frame t-1's. A gradual transition (a fade, a dissolve) is not found."""
    if not 0.0 < threshold < 1.0:
        raise UserError(f"threshold: a histogram distance is in (0, 1), not {threshold}")
    cuts: list[int] = []
    previous = None
    for t, frame in enumerate(frames):
        current = _histograms(frame, t)  # one frame's histograms at a time: a clip need not fit in memory
        if previous is not None and _distance(previous, current) > threshold:
            cuts.append(t)
        previous = current
    return cuts
