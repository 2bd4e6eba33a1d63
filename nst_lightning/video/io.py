"""Reading clips: a video file (through PyAV) or a folder or glob of images, as numbered RGB frames
with their presentation times. Writing them back is ``encode.py`` (re-exported here).

A frame's index is its place in presentation order among all the stream's packets, found once by
demuxing (no decoding: it reads the container's index or headers), so an index means the same frame
whether it is read from the start or after a seek, and a frame that cannot be decoded keeps its
number in ``FrameReader.lost`` instead of shifting every later one.
"""

from __future__ import annotations

import bisect
import glob
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from nst_lightning.inputs.images import check_pixels, header_size, open_image, pixel_limit
from nst_lightning.utilities.errors import UserError, param
from nst_lightning.video.encode import write_gif, write_video

__all__ = ["ClipInfo", "Frame", "FrameReader", "open_clip", "parse_range", "write_gif", "write_video"]

DEFAULT_FPS = Fraction(25)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif"})
_INPUT = param("input")
_FRAMES = param("frames")


@dataclass(frozen=True)
class ClipInfo:
    source: str  # as given
    kind: str  # "video" (a file) or "frames" (a folder or glob of images)
    width: int
    height: int
    frame_count: Optional[int]  # when known without decoding everything (frames: always known)
    fps: Fraction  # the stream's average rate; frames folders: the `fps` argument (default 25)
    has_audio: bool


@dataclass
class Frame:
    index: int  # 0-based in the clip
    image: np.ndarray  # H x W x 3 uint8 RGB
    time: Fraction  # seconds from the clip's first frame; frames folders: index / fps


def _natural_key(path: str) -> list:
    # "frame_2" before "frame_10": digit runs compare as numbers, the rest as (case-folded) text.
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", path)]


def _image_files(source: str) -> Optional[list[str]]:
    """The images of a folder or glob, in natural order; ``None`` when ``source`` is a single file."""
    if os.path.isdir(source):
        found = [os.path.join(source, name) for name in os.listdir(source)]
    elif glob.has_magic(source) and not os.path.exists(source):  # a file named "take[1].mp4" is a file
        found = glob.glob(source)
    else:
        return None
    images = sorted((p for p in found if Path(p).suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(p)), key=_natural_key)
    if not images:
        raise UserError(
            f"{_INPUT} {source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); give a video file or a folder of frames"
        )
    return images


def _open_container(source: str, options: Optional[dict[str, str]] = None) -> av.container.InputContainer:
    """``source`` opened, its first video stream's decoder bounded by the photo's limits: FFmpeg's
    ``max_pixels`` (``pixel_limit`` of the file's size) refuses any larger picture before allocating
    it, in the probe ``av.open`` decodes and in every frame decoded later, whatever the headers say
    (a stream may change size midway). ``options``: the format's and the probe's instead."""
    if not os.path.exists(source):
        raise UserError(
            f"{_INPUT} {source} does not exist; give a video file, a folder of images or a glob such as 'shots/*.png'"
        )
    limit = {"max_pixels": str(pixel_limit(os.path.getsize(source)))}
    try:
        container = av.open(source, options=limit if options is None else options)
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise UserError(
            f"{_INPUT} {source} is not a video FFmpeg can read ({err}); give an mp4, mov, mkv, webm or GIF file"
        ) from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{_INPUT} {source} has no video stream (only audio or data); give a file with a picture")
    container.streams.video[0].codec_context.options = limit
    return container


def _check_size(container: av.container.InputContainer, source: str) -> None:
    """Refuse, before anything is decoded, a picture larger than a photo of the file's size may be
    (``check_pixels``). A probe refused by ``max_pixels`` leaves the size unknown (0 x 0): it is then
    read again with no decoder allowed, from the headers alone."""
    size = os.path.getsize(source)
    context = container.streams.video[0].codec_context
    width, height = context.width, context.height
    if not (width and height):
        with _open_container(source, options={"codec_whitelist": "none"}) as headers:
            context = headers.streams.video[0].codec_context
            width, height = context.width, context.height
    if not (width and height):
        raise UserError(
            f"{_INPUT} {source} has no picture size FFmpeg can read within {pixel_limit(size):,} pixels, the most a file "
            f"of {size:,} bytes may decode (a decompression bomb, or a damaged video); give a smaller video"
        )
    check_pixels(width, height, size, source, _INPUT, noun="video")


def open_clip(source: str, fps: Optional[Fraction] = None) -> ClipInfo:
    """What ``source`` is: its kind, size, frame count (when the container says), rate and sound."""
    files = _image_files(source)
    if files is not None:
        height, width = header_size(Path(files[0]).read_bytes(), None, files[0], _INPUT)
        return ClipInfo(source, "frames", width, height, len(files), Fraction(fps or DEFAULT_FPS), False)
    with _open_container(source) as container:
        _check_size(container, source)  # before the first frame is decoded, for its rotation below
        stream = container.streams.video[0]
        # average_rate is unset for some streams (a GIF, raw H.264): guessed_rate is FFmpeg's estimate.
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        width, height = stream.codec_context.width, stream.codec_context.height
        if _quarter_turns(_first_rotation(container)) % 2:
            width, height = height, width  # a phone's portrait clip: stored sideways, shown upright
        return ClipInfo(source, "video", width, height, stream.frames or None, Fraction(rate), bool(container.streams.audio))


def _first_rotation(container: av.container.InputContainer) -> int:
    """The display rotation of the first frame that decodes (the stream's display matrix), else 0."""
    try:
        for frame in container.decode(video=0):
            return frame.rotation
    except av.error.FFmpegError:
        pass
    return 0


def _quarter_turns(rotation: int) -> int:
    return round(rotation / 90) % 4


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB the way players show it: turned by its display matrix (counterclockwise
    degrees, as PyAV reports them), since FFmpeg's decoder returns the picture as stored."""
    turns = _quarter_turns(frame.rotation)
    image = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def parse_range(text: str) -> tuple[int, Optional[int]]:
    """``--frames A:B`` as ``(A, B)``; ``A:`` as ``(A, None)``, ``:B`` as ``(0, B)``."""
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if match is None:
        raise UserError(f"{_FRAMES} {text!r} is not a range; write START:STOP (frames START to STOP-1), START: or :STOP")
    start = int(match[1]) if match[1] else 0
    stop = int(match[2]) if match[2] else None
    if stop is not None and stop <= start:
        raise UserError(f"{_FRAMES} {text} selects no frames; STOP must be greater than START")
    return start, stop


@dataclass
class FrameReader:
    """The frames ``start <= index < stop`` of ``source``, in order; ``lost`` lists, after iterating,
    the indices in that range that could not be decoded (they are skipped, not fatal)."""

    source: str
    start: int = 0
    stop: Optional[int] = None
    fps: Optional[Fraction] = None
    lost: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.info = open_clip(self.source, self.fps)
        if self.stop is not None and self.stop <= self.start:
            raise UserError(f"{_FRAMES} {self._range()} selects no frames; STOP must be greater than START")
        self._check_start(self.info.frame_count)

    def _range(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}"

    def _check_start(self, count: Optional[int]) -> None:
        if count is not None and self.start >= count:
            raise UserError(f"{_FRAMES} {self._range()} but the clip has {count} frames; choose a start below {count}")

    def __iter__(self) -> Iterator[Frame]:
        self.lost = []
        frames = self._images() if self.info.kind == "frames" else self._video()
        yielded = False
        for frame in frames:
            yielded = True
            height, width = frame.image.shape[:2]
            if (width, height) != (self.info.width, self.info.height):
                raise UserError(
                    f"{_INPUT} {self.source}: frame {frame.index} is {width}x{height}, the first is "
                    f"{self.info.width}x{self.info.height}; every frame must have one size (resize them alike)"
                )
            yield frame
        if not yielded:
            raise UserError(f"{_INPUT} {self.source}: none of frames {self._range()} could be decoded; the file is damaged there")

    def _images(self) -> Iterator[Frame]:
        files = _image_files(self.source) or []
        for index in range(self.start, len(files) if self.stop is None else min(self.stop, len(files))):
            try:
                image = np.asarray(open_image(Path(files[index]).read_bytes(), None, files[index], _INPUT))
            except (UserError, OSError):
                self.lost.append(index)  # one unreadable image is a lost frame, as a corrupt packet is
                continue
            yield Frame(index, image, Fraction(index) / self.info.fps)

    def _video(self) -> Iterator[Frame]:
        with _open_container(self.source) as container:
            stream = container.streams.video[0]
            times = _presentation_times(container, stream)
        self._check_start(len(times))
        stop = len(times) if self.stop is None else min(self.stop, len(times))
        wanted = set(range(self.start, stop))
        for frame in _decoded(self.source, times, self.start, stop):
            wanted.discard(frame.index)
            yield frame
        self.lost = sorted(wanted)


def _presentation_times(container: av.container.InputContainer, stream: av.VideoStream) -> list[int]:
    """Every video packet's pts, sorted: the clip's frames in presentation order (demuxed, not decoded)."""
    times = []
    try:
        for packet in container.demux(stream):
            if packet.size:  # the empty packets at the end flush the decoder: no frame of their own
                times.append(packet.pts if packet.pts is not None else packet.dts)
    except av.error.FFmpegError:
        pass  # the container is damaged from here on: the frames before it are the clip
    if None in times:  # no timestamps at all (raw streams): count packets, one frame each
        times = list(range(len(times)))
    return sorted(times)


def _decoded(source: str, times: list[int], start: int, stop: int, seek: bool = True) -> Iterator[Frame]:
    """Decode frames ``start`` to ``stop - 1``, seeking to the keyframe before ``start`` first; a packet
    the decoder rejects is skipped and decoding goes on from the next one."""
    with _open_container(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if seek and start > 0:
            try:
                container.seek(times[start], stream=stream, backward=True)
            except av.error.FFmpegError:
                seek = False  # a format that cannot seek: decode from the start
        packets = container.demux(stream)
        index = -1
        while True:
            try:
                decoded = next(packets).decode()
            except StopIteration:
                return
            except av.error.FFmpegError:
                continue  # a corrupt packet: its frame is lost (FrameReader.lost), the next may decode
            for frame in decoded:
                index = index + 1 if frame.pts is None else min(bisect.bisect_left(times, frame.pts), len(times) - 1)
                if seek and start > 0 and index > start:
                    # The seek landed past the start (an index that lies): decode from the beginning.
                    yield from _decoded(source, times, start, stop, seek=False)
                    return
                seek = False  # checked once, on the first frame after the seek
                if index >= stop:
                    return
                if index >= start:
                    time = Fraction((frame.pts if frame.pts is not None else times[index]) - times[0]) * stream.time_base
                    yield Frame(index, _upright(frame), time)
