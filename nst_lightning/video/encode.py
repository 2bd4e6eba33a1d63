"""Writing clips: H.264 in mp4 with the frames' own presentation times and, optionally, a stretch of
another file's sound; an animated GIF. Both atomically: a temporary name in the same directory, then
a rename, so nothing half-written ever has the final name.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import av
import numpy as np
from PIL import Image

from nst_lightning.utilities.files import DISK_ERRNOS, TMP_SUFFIX, WriteFailed, atomic_write, describe_write_failure
from nst_lightning.video.audio import audio_packets

# The finest time base written: a multiple of every usual rate's (24, 25, 30, 60, 1000/1001...),
# and MPEG's. Times whose denominators divide a coarser one are written in that one, exactly.
FINE_TIME_BASE = Fraction(1, 90000)


def write_video(
    images: Iterable[np.ndarray],
    times: Sequence[Fraction],
    out: Path,
    *,
    fps: Fraction,
    crf: int = 18,
    audio_from: Optional[str] = None,
    audio_start: Fraction = Fraction(0),
    audio_end: Optional[Fraction] = None,
) -> Path:
    """Encode ``images`` (H x W x 3 uint8 RGB) shown at ``times`` (seconds) to ``out`` (H.264, yuv420p,
    CRF ``crf``, in mp4). ``fps`` is the nominal rate the file declares; the frames keep their own
    times, so a variable rate stays variable. ``audio_from``: its first audio stream from
    ``audio_start`` to ``audio_end``, moved to start at 0 (copied when mp4 can hold its codec, else
    re-encoded to AAC); the picture is not moved, so for a cut give ``times`` from the cut too
    (``frame.time - audio_start``) and the two stay in sync. Returns ``out``."""
    out = Path(out)
    time_base = _time_base(times)
    images = iter(images)
    first = next(images, None)
    if first is None:
        raise ValueError("write_video: no images to write")
    with _temporary(out) as tmp, av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = _even(first).shape[:2]
        stream.codec_context.time_base = time_base
        sound = audio_packets(container, audio_from, audio_start, audio_end) if audio_from else iter(())
        pending = next(sound, None)
        for image, time in zip(itertools.chain([first], images), times):
            image = _even(image)
            if image.shape[:2] != (stream.height, stream.width):
                raise ValueError(
                    f"write_video: an image is {image.shape[1]}x{image.shape[0]}, the first {stream.width}x{stream.height}"
                )
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(Fraction(time) / time_base), time_base
            container.mux(stream.encode(frame))
            # Sound interleaved with the picture as it goes, so the muxer never holds much of either.
            while pending is not None and pending.pts * pending.time_base <= time:
                container.mux(pending)
                pending = next(sound, None)
        container.mux(stream.encode(None))
        for packet in ([pending] if pending is not None else []) + list(sound):
            container.mux(packet)
    return out


def _time_base(times: Sequence[Fraction]) -> Fraction:
    """The coarsest time base that holds every time exactly when there is one no finer than
    ``FINE_TIME_BASE``'s, else ``FINE_TIME_BASE``; the times must increase by at least one tick."""
    denominator = 1
    for time in times:
        denominator = math.lcm(denominator, Fraction(time).denominator)
    time_base = Fraction(1, denominator) if denominator <= FINE_TIME_BASE.denominator else FINE_TIME_BASE
    ticks = [round(Fraction(t) / time_base) for t in times]
    if any(b <= a for a, b in zip(ticks, ticks[1:])):
        raise ValueError(f"write_video: frame times must increase by at least {time_base} s each")
    return time_base


def _even(image: np.ndarray) -> np.ndarray:
    """yuv420p halves the colour resolution in both directions, so it needs an even width and height:
    an odd one gets one more row or column, a copy of the last (invisible at the edge, no pixel lost)."""
    height, width = image.shape[:2]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"write_video: images must be H x W x 3 uint8, not {image.shape} {image.dtype}")
    if height % 2 or width % 2:
        image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(image)


@contextlib.contextmanager
def _temporary(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` for a writer that needs a name (FFmpeg's mp4 muxer reopens
    the file to move its index to the front), renamed to ``out`` only once it is complete and synced."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(8)}{TMP_SUFFIX}"
    # Created as open() creates a file (0666 less the umask, applied by the kernel), as atomic_write
    # leaves every other output; mkstemp's would stay private (0600) through the rename.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())  # the data on disk before the rename, as atomic_write does
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in DISK_ERRNOS:
            raise WriteFailed(err.errno, describe_write_failure(out, err)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_gif(images: Iterable[np.ndarray], times: Sequence[Fraction], out: Path) -> Path:
    """An animated GIF of ``images`` that loops forever, each shown until the next one's time."""
    frames = [Image.fromarray(np.asarray(image, dtype=np.uint8)) for image in images]
    if not frames:
        raise ValueError("write_gif: no images to write")
    times = [Fraction(t) for t in times[: len(frames)]]
    # GIF counts in hundredths of a second. Each frame's duration is the difference of the rounded
    # times, so rounding never accumulates; the last is shown as long as the one before it.
    ticks = [round(t * 100) for t in times]
    ticks.append(ticks[-1] + (ticks[-1] - ticks[-2] if len(ticks) > 1 else 10))
    # Browsers show a delay under 2 hundredths as 10: the shortest a GIF can honestly promise.
    durations = [max(2, b - a) * 10 for a, b in zip(ticks, ticks[1:])]

    def save(handle) -> None:
        # Pillow merges identical consecutive frames into one, adding their durations: same picture.
        frames[0].save(handle, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0, disposal=1)

    return atomic_write(out, save)
