"""Files the input tests make that Pillow cannot make: ICC profiles (CMYK, grey), TIFFs of 32-bit and
floating-point samples. The RGB profiles come from ``nst_lightning.inputs.profiles.rgb_profile``,
whose colorants ``test_photos.py`` checks against the published ones."""

from __future__ import annotations

import itertools
import struct
import zlib

import numpy as np

from nst_lightning.inputs.profiles import D65, SRGB_PRIMARIES, _mluc, colorants, icc_bytes


def gray_profile(gamma: float) -> bytes:
    """A grey display profile with a gamma curve (as Photoshop's "Gray Gamma 2.2")."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    white = b"XYZ " + bytes(4) + struct.pack(">3i", 63190, 65536, 54061)  # D50
    return icc_bytes(b"mntr", b"GRAY", [(b"desc", _mluc(f"Gray Gamma {gamma}")), (b"wtpt", white), (b"kTRC", curve)])


def cmyk_profile(grid: int = 5) -> bytes:
    """A CMYK printer profile (an A2B0 lookup table, ICC lut16Type) of imperfect inks on paper: cyan
    also darkens green a little, magenta blue, black is not quite black, and ink spreads (dot gain).
    Its colours differ from Pillow's profile-less conversion by tens of levels."""
    to_xyz = colorants(SRGB_PRIMARIES, D65)
    nodes = []
    for c, m, y, k in itertools.product(np.linspace(0, 1, grid), repeat=4):
        c, m, y, k = (v ** 0.7 for v in (c, m, y, k))  # dot gain: a 50% tint prints as 62%
        light = np.array([(1 - 0.9 * c), (1 - 0.85 * m) * (1 - 0.2 * c), (1 - 0.9 * y) * (1 - 0.25 * m)]) * (1 - 0.92 * k)
        xyz = to_xyz @ (0.03 + 0.95 * light)  # paper is not quite white, the darkest ink not quite black
        nodes.extend(round(min(max(v, 0.0), 1.99) * 32768) for v in xyz)  # lut16's XYZ: 0x8000 is 1.0
    identity = struct.pack(">2H", 0, 65535)
    lut = (
        b"mft2" + bytes(4) + struct.pack(">4B", 4, 3, grid, 0)
        + struct.pack(">9i", 65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
        + struct.pack(">2H", 2, 2) + identity * 4 + struct.pack(f">{len(nodes)}H", *nodes) + identity * 3
    )
    white = b"XYZ " + bytes(4) + struct.pack(">3i", 63190, 65536, 54061)
    return icc_bytes(b"prtr", b"CMYK", [(b"desc", _mluc("Imperfect inks")), (b"wtpt", white), (b"A2B0", lut)], version=0x02100000)


def png_bytes(width: int, height: int, padding: int = 0, rows: bytes = b"") -> bytes:
    """An 8-bit grey PNG written by hand: its header may declare any size over any ``rows`` (filter
    bytes included, compressed here), and ``padding`` bytes of a private chunk make the file that
    much larger without a pixel more (a bomb padded to look like a real file)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pad = chunk(b"paDd", bytes(padding)) if padding else b""  # ancillary, private: decoders skip it
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pad + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def tiff_bytes(array: np.ndarray, sample_format: int) -> bytes:
    """An uncompressed little-endian TIFF of ``array`` (``H x W`` or ``H x W x 3``) with its own sample
    type: ``sample_format`` 1 unsigned integer, 2 signed integer, 3 floating point."""
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    height, width = array.shape[:2]
    samples = 1 if array.ndim == 2 else array.shape[2]
    data = array.tobytes()
    count = 10  # directory entries
    after = 8 + 2 + 12 * count + 4  # header, count, entries, next-directory offset
    per_sample = struct.pack(f"<{samples}H", *[array.dtype.itemsize * 8] * samples)
    formats = struct.pack(f"<{samples}H", *[sample_format] * samples)
    # Values of more than 4 bytes live after the directory (bits, sample format), then the strip.
    extra = (per_sample + formats) if samples > 2 else b""
    bits_at, formats_at, strip_at = after, after + len(per_sample), after + len(extra)

    def entry(tag: int, kind: int, number: int, value: int | bytes) -> bytes:  # kind 3: short, 4: long
        if isinstance(value, bytes):
            return struct.pack("<HHI", tag, kind, number) + value.ljust(4, b"\x00")
        return struct.pack("<HHI", tag, kind, number) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))

    entries = [
        entry(256, 4, 1, width), entry(257, 4, 1, height),
        entry(258, 3, samples, per_sample) if samples <= 2 else entry(258, 3, samples, bits_at),
        entry(259, 3, 1, 1), entry(262, 3, 1, 1 if samples == 1 else 2), entry(273, 4, 1, strip_at),
        entry(277, 3, 1, samples), entry(278, 4, 1, height), entry(279, 4, 1, len(data)),
        entry(339, 3, samples, formats) if samples <= 2 else entry(339, 3, samples, formats_at),
    ]
    assert len(entries) == count
    directory = struct.pack("<H", count) + b"".join(entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 8) + directory + extra + data
