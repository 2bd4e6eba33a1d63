"""A stretch of a file's sound as packets for an mp4 being written: copied as they are when mp4 can
hold the codec (no generation loss, no time), else decoded and encoded to AAC, trimmed to the sample.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterator, Optional

import av
import numpy as np

# The audio codecs FFmpeg's mp4 muxer takes as they are.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
# FFmpeg's default layout for each channel count: a WAV's or a Matroska PCM track's layout is often
# just "2 channels", which the AAC encoder refuses.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def audio_packets(
    output: av.container.OutputContainer, source: str, start: Fraction, end: Optional[Fraction]
) -> Iterator[av.Packet]:
    """Add an audio stream to ``output`` (before anything is muxed) and return its packets, in order,
    for ``source``'s first audio stream from ``start`` to ``end`` moved to start at 0; no packets and
    no stream when ``source`` has no sound."""
    container = av.open(source)
    if not container.streams.audio:
        container.close()
        return iter(())
    stream = container.streams.audio[0]
    if stream.codec_context.name in MP4_AUDIO_CODECS:
        # PyAV's template leaves the codec tag unset, so mp4 picks its own (an AVI's would not fit).
        target = output.add_stream_from_template(stream)
        return _copied(container, stream, target, start, end)
    target = output.add_stream("aac", rate=stream.rate)
    target.layout = _LAYOUTS.get(stream.layout.nb_channels, stream.layout.name)
    return _encoded(container, stream, target, start, end)


def _copied(container, stream, target, start: Fraction, end: Optional[Fraction]) -> Iterator[av.Packet]:
    """The packets that start in ``[start, end)``, their timestamps moved back by ``start``."""
    with container:
        offset = round(start / stream.time_base)
        for packet in container.demux(stream):
            if packet.pts is None or not packet.size:
                continue
            time = packet.pts * stream.time_base
            if time < start:
                continue
            if end is not None and time >= end:
                return
            packet.pts -= offset
            packet.dts = packet.pts if packet.dts is None else packet.dts - offset
            packet.stream = target
            packet.time_base = stream.time_base
            yield packet


def _encoded(container, stream, target, start: Fraction, end: Optional[Fraction]) -> Iterator[av.Packet]:
    """The samples in ``[start, end)`` encoded to AAC, the first at time 0."""
    rate = stream.rate
    first, last = round(start * rate), None if end is None else round(end * rate)
    resampler = av.AudioResampler(format="fltp", layout=target.layout, rate=rate)
    written = 0
    with container:
        position = None  # the sample number of the next decoded sample
        for decoded in _decodable(container, stream):
            if decoded.pts is not None:
                position = round(decoded.pts * stream.time_base * rate)
            position = position or 0
            for frame in resampler.resample(decoded):
                samples = frame.to_ndarray()  # planar: channels x samples
                low = max(first - position, 0)
                high = samples.shape[1] if last is None else min(last - position, samples.shape[1])
                position += samples.shape[1]
                if high <= low:
                    continue
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, low:high]), format="fltp", layout=target.layout
                )
                piece.sample_rate, piece.pts, piece.time_base = rate, written, Fraction(1, rate)
                written += high - low
                yield from target.encode(piece)
            if last is not None and position >= last:
                break
    yield from target.encode(None)


def _decodable(container, stream) -> Iterator[av.AudioFrame]:
    """The stream's frames; a packet that does not decode is skipped (a click of silence, not an error)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue
