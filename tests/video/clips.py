"""Clips for the video tests, made with PyAV from the built-in photos: a pan (its flow is known
exactly), optionally cut to another photo, with a sine as its sound."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Optional

import av
import numpy as np
from PIL import Image

from nst_lightning.inputs.sources import read_source

RATE = 44100


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(read_source(f"builtin:{name}", "test"))).convert("RGB"))


def pan_frames(count: int, size: tuple[int, int] = (64, 48), step: int = 2, cut_at: Optional[int] = None) -> list[np.ndarray]:
    """``count`` frames of ``size`` panning right over Tübingen by ``step`` px a frame; from ``cut_at``
    on, a pan over *The Starry Night* (a hard cut)."""
    width, height = size
    frames = []
    for i in range(count):
        image = photo("starry_night" if cut_at is not None and i >= cut_at else "tubingen")
        frames.append(np.ascontiguousarray(image[100 : 100 + height, 100 + step * i : 100 + step * i + width]))
    return frames


def make_pan_clip(path: Path, count: int = 6, size: tuple[int, int] = (64, 48), fps: Fraction = Fraction(12),
                  audio: bool = True, cut_at: Optional[int] = None) -> Path:
    """An H.264 mp4 (or mkv...) of ``pan_frames``, lossless enough (CRF 0) to compare pixels, and a
    440 Hz sine a little longer than the picture."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "0", "preset": "ultrafast", "g": "4"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv444p"
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=RATE)
            sound.layout = "mono"
        for i, pixels in enumerate(pan_frames(count, size, cut_at=cut_at)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = float(count / fps) + 0.5
            fmt = sound.codec_context.format.name
            sine = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)
            for k in range(0, len(sine), 1024):
                frame = av.AudioFrame.from_ndarray(sine[None, k : k + 1024], format=fmt, layout="mono")
                frame.sample_rate, frame.pts = RATE, k
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def declared_size_gif(path: Path, width: int, height: int, frames: int = 2) -> Path:
    """An animated GIF whose header declares a ``width`` x ``height`` screen, its frames one pixel each:
    under 100 bytes, however large the screen (FFmpeg's decoder allocates the whole screen a frame)."""
    data = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff")
    data += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for _ in range(frames):
        data += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # shown for 0.1 s
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # 1 x 1, colour 0
    path.write_bytes(bytes(data + b"\x3b"))
    return path


def png_clip(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """A mov of PNG frames of ``sizes`` (black, 1 bit a pixel: a 16000 x 12000 one is 23 kB), the stream
    declaring the first's size: each PNG carries its own, so a later frame may be larger."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=10)
        stream.width, stream.height, stream.pix_fmt = sizes[0][0], sizes[0][1], "monob"
        for i, size in enumerate(sizes):
            image = io.BytesIO()
            Image.new("1", size).save(image, format="PNG")
            packet = av.Packet(image.getvalue())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 10)
            out.mux(packet)
    return path
