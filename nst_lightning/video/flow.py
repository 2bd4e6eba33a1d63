"""Optical flow, warping and the consistency mask of Ruder, Dosovitskiy & Brox 2016 ("Artistic style
transfer for videos", Sec. 3), and the warping error of Lai et al. 2018 that measures flicker.

Convention: a flow ``f`` from frame a to frame b is an H x W x 2 float32 array on a's pixel grid,
(dx, dy) in pixels, such that ``a(x) ≈ b(x + f(x))``. So ``warp(b, f)`` is b moved onto a's grid, and
``warp(prev_result, flow_current_to_prev)`` is the previous stylized frame moved onto the current one.

The flow is OpenCV's DIS (Kroeger et al. 2016) on grey images, not the DeepFlow/EpicFlow of Ruder et
al.: 33 ms a pair at 1024 px on 2 CPU cores with the default preset (docs/guide/video.md: the presets measured
on Sintel against the true flow; large motion, ~32 px a frame, is beyond it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import cv2
import numpy as np

from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write

Preset = Literal["ultrafast", "fast", "medium"]
PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}
# The lowest end-point error on Sintel at every size, for 33 ms a pair at 1024 px (docs/guide/video.md).
DEFAULT_PRESET: Preset = "medium"
# DIS raises on frames under 12 px a side and crashed the process (a segfault, OpenCV 5.0) on a 100 x 12
# one, so we refuse under 16 first; cv2.remap's maps are limited to SHRT_MAX.
MIN_SIDE = 16
MAX_SIDE = 32767


def _check_frame(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise UserError(f"{name}: a frame must be an H x W x 3 uint8 RGB array, not a {what}")
    if min(image.shape[:2]) < MIN_SIDE or max(image.shape[:2]) > MAX_SIDE:
        raise UserError(f"{name}: a {image.shape[1]}x{image.shape[0]} frame is outside {MIN_SIDE}..{MAX_SIDE} px a side")


def _check_flow(flow: np.ndarray, name: str, shape: Optional[tuple[int, ...]] = None) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        raise UserError(f"{name}: a flow must be an H x W x 2 array, not {getattr(flow, 'shape', type(flow).__name__)}")
    if shape is not None and flow.shape[:2] != shape[:2]:
        raise UserError(f"{name}: a flow of {flow.shape[1]}x{flow.shape[0]} does not match {shape[1]}x{shape[0]}")


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise UserError(f"unknown optical flow preset {preset!r}; choose one of {', '.join(PRESETS)}")


def dis_flow(a: np.ndarray, b: np.ndarray, preset: Preset = DEFAULT_PRESET) -> np.ndarray:
    """The flow a -> b (module docstring's convention) of two H x W x 3 uint8 RGB frames: OpenCV's DIS
    with ``preset`` on their grey images (DIS matches intensity patches, so colour adds little)."""
    _check_frame(a, "a")
    _check_frame(b, "b")
    if a.shape != b.shape:
        raise UserError(f"frames of different sizes ({a.shape[1]}x{a.shape[0]}, {b.shape[1]}x{b.shape[0]}) have no flow")
    _check_preset(preset)
    grey_a, grey_b = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (a, b))
    # A new instance per call: it holds per-size buffers and is not safe to share across threads.
    flow = cv2.DISOpticalFlow_create(PRESETS[preset]).calc(grey_a, grey_b, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _sample_points(flow: np.ndarray) -> np.ndarray:
    """x + flow(x) as remap's absolute map (the relative-map flag needs OpenCV >= 4.10; the extra pins 4.8)."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    return grid + flow.astype(np.float32, copy=False)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + flow(x))``: ``image`` (H x W or H x W x C, any C, as float32) lives on the
    other frame's grid, ``out`` on flow's. Bilinear; points outside take the nearest border pixel."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise UserError(f"warp: an image must be H x W or H x W x C, not of shape {image.shape}")
    _check_flow(flow, "flow")
    if max(flow.shape[:2]) > MAX_SIDE or max(image.shape[:2]) > MAX_SIDE:
        raise UserError(f"warp: images over {MAX_SIDE} px a side cannot be remapped")
    points = _sample_points(flow)
    # Measured on OpenCV 5.0: remap interpolates 1, 3 and 4 float channels exactly but 2 or more than 4
    # on its fixed-point table (positions rounded to 1/32 px, errors of 0.02 on [0, 1] images). So we
    # remap in chunks of at most 4 channels, a chunk of 2 padded to 3.
    channels = image.reshape(*image.shape[:2], -1)
    out = []
    for c in range(0, channels.shape[2], 4):
        chunk = channels[..., c : c + 4]
        n = chunk.shape[2]
        if n == 2:
            chunk = np.concatenate([chunk, chunk[..., :1]], axis=2)
        warped = cv2.remap(np.ascontiguousarray(chunk), points, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.append(warped.reshape(*flow.shape[:2], -1)[..., :n])
    out = np.concatenate(out, axis=2)
    return out[..., 0] if image.ndim == 2 else out


def consistency_mask(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """H x W float32 on flow's grid: 1 where ``flow`` (a -> b) can be trusted, 0 where (Ruder et al.
    Sec. 3) the forward-backward check fails, ``|w + w'|^2 > 0.01 (|w|^2 + |w'|^2) + 0.5`` with
    ``w = flow(x)``, ``w' = reverse(x + w)`` (``reverse``: b -> a on b's grid) — a disocclusion —, or x
    lies on a motion boundary, ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002``, or x + w leaves the frame.
    """
    _check_flow(flow, "flow")
    _check_flow(reverse, "reverse")
    h, w = flow.shape[:2]
    flow = flow.astype(np.float32, copy=False)
    back = warp(reverse, flow)
    norm = np.sum(flow**2, axis=2)
    disoccluded = np.sum((flow + back) ** 2, axis=2) > 0.01 * (norm + np.sum(back**2, axis=2)) + 0.5
    # Central differences, as Ruder et al.'s consistencyChecker (one-sided at the border).
    du_dy, du_dx = np.gradient(flow[..., 0])
    dv_dy, dv_dx = np.gradient(flow[..., 1])
    boundary = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * norm + 0.002
    # Ruder et al. drop points whose bilinear neighbours leave the frame; we keep the closed interval
    # [0, W-1] x [0, H-1], so a still frame is consistent up to its last column and row.
    points = _sample_points(flow)
    outside = (points[..., 0] < 0) | (points[..., 0] > w - 1) | (points[..., 1] < 0) | (points[..., 1] > h - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def end_point_error(flow: np.ndarray, truth: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """The mean Euclidean distance between ``flow`` and ``truth`` over the pixels where ``valid``
    (H x W, true or non-zero = counted; default all)."""
    _check_flow(flow, "flow")
    _check_flow(truth, "truth", flow.shape)
    distance = np.sqrt(np.sum((flow.astype(np.float64) - truth) ** 2, axis=2))
    if valid is None:
        return float(distance.mean())
    valid = np.asarray(valid).astype(bool)
    if valid.shape != distance.shape:
        raise UserError(f"valid: a mask of shape {valid.shape} does not match the flow's {distance.shape}")
    if not valid.any():
        raise UserError("valid: no pixel is valid, so there is no end-point error")
    return float(distance[valid].mean())


def _unit(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    return frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)


def warping_error(video: Sequence[np.ndarray], inputs: Sequence[np.ndarray], preset: Preset = DEFAULT_PRESET) -> float:
    """E_warp of Lai et al. 2018 ("Learning Blind Video Temporal Consistency", Sec. 5): the mean over t
    of ``sum_p M_t(p) D_t(p) / sum_p M_t(p)``, with ``D_t`` the squared difference between V_t and
    V_{t+1} warped onto frame t's grid (flow t -> t+1), *averaged* over the 3 channels, V in [0, 1]
    (uint8 frames / 255), and ``M_t`` the consistency mask of the flows t -> t+1 and t+1 -> t. Both
    flows are those of ``inputs`` (the unstylized frames), so the result judges ``video``, not its flow.
    Pairs whose mask is empty are left out (Lai et al. divide by all pixels there); ``nan`` if all are.
    A pair across a cut has no meaningful flow: give one shot (``shots.find_cuts``).
    """
    if len(video) != len(inputs) or len(video) < 2:
        raise UserError(f"warping_error needs two or more frames and as many inputs ({len(video)} and {len(inputs)} given)")
    errors = []
    for t in range(len(video) - 1):
        forward = dis_flow(inputs[t], inputs[t + 1], preset)
        mask = consistency_mask(forward, dis_flow(inputs[t + 1], inputs[t], preset))
        here, there = _unit(video[t]), _unit(video[t + 1])
        if here.ndim != 3 or here.shape[:2] != forward.shape[:2] or there.shape != here.shape:
            raise UserError(f"video frame {t}: an H x W x C frame of its input's size is needed, not of shape {here.shape}")
        difference = np.mean((here - warp(there, forward)) ** 2, axis=2)
        if mask.sum() > 0:
            errors.append(float(np.sum(mask * difference) / np.sum(mask)))
    return float(np.mean(errors)) if errors else float("nan")


class FlowCache:
    """Flows at the working size, computed once and kept in ``directory`` so a rerun (or a resumed
    clip) reads them back. A file per pair and preset, ``{i:06d}_{j:06d}_{preset}.npy``, float32 exactly
    as computed (a cached flow is bit-identical to a fresh one). The frames' content is not part of the
    key: use one directory per clip and working size."""

    def __init__(self, directory: Path, preset: Preset = DEFAULT_PRESET, method: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                 name: Optional[str] = None) -> None:
        """``method(a, b)`` (named ``name`` in the files, e.g. ``raft``) instead of DIS at ``preset``."""
        if method is None:
            _check_preset(preset)
        self.directory = Path(directory)
        self.preset = name if method is not None else preset
        self.method = method or (lambda a, b: dis_flow(a, b, preset))

    def path(self, i: int, j: int) -> Path:
        return self.directory / f"{i:06d}_{j:06d}_{self.preset}.npy"

    def pair(self, i: int, j: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow frame i -> frame j (``a``, ``b``): read from its file if that holds a flow of a's
        size, else computed by ``dis_flow`` and written atomically (a killed run leaves no half file)."""
        path = self.path(i, j)
        try:
            flow = np.load(path, allow_pickle=False)
            if flow.shape == (*a.shape[:2], 2) and flow.dtype == np.float32:
                return flow
        except (OSError, ValueError, EOFError):
            pass  # absent, or unreadable: compute it again and replace it
        flow = self.method(a, b)
        atomic_write(path, lambda handle: np.save(handle, flow, allow_pickle=False), needed=flow.nbytes + 128)
        return flow
