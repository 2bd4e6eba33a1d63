"""What decoding a photograph costs, and what bombs cost to refuse (docs/lab/reliability.md quotes it).

Each measurement runs in a fresh process, which reads the file's bytes first and then decodes them
as a run does (``decode_pixels``, the datamodule's call): seconds of the decode, and its peak memory
as the process's peak resident set during the decode over what it held with the bytes read (Linux:
the peak is reset through ``/proc/self/clear_refs``).

- camera-sized JPEGs (108 Mpx 12000x9000, 200 Mpx 16320x12240), made from the built-in Tübingen
  photo upscaled, with sensor-like noise, at quality 90 (so that their sizes are a camera's, not a
  flat image's), decoded for 256 and 1024 px results;
- bombs: PNGs that declare 100 Mpx, 400 Mpx and 4 Gpx in a few hundred bytes, and one padded
  to pass the bytes check that declares more than the decoding ceiling;
- colour: the built-in photo tagged Adobe RGB (1998) or Display P3, decoded ignoring its profile (as
  the program once did) and converted (as it does), against littlecms's own conversion.

    python benchmarks/decode_costs.py            # prints markdown tables; docs/lab/reliability.md quotes them
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_lightning.inputs.images import MAX_DECODED_PIXELS, PIXELS_PER_BYTE, decode_pixels  # noqa: E402
from nst_lightning.inputs.profiles import ADOBE_RGB_GAMMA, ADOBE_RGB_PRIMARIES, D65, P3_PRIMARIES, SRGB_CURVE, rgb_profile  # noqa: E402
from nst_lightning.inputs.sources import read_source  # noqa: E402
from tests.inputs.files import png_bytes  # noqa: E402

MEASURE = """
import json, sys, time
sys.path.insert(0, {repo!r})
from nst_lightning.inputs.images import decode_pixels
from nst_lightning.utilities.errors import UserError

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

data = open({path!r}, "rb").read()
decode_pixels(open({warm!r}, "rb").read(), 64)  # imports and codecs loaded before measuring
open("/proc/self/clear_refs", "w").write("5")  # Linux: the peak resident set restarts from now
before = kib("VmRSS:")
start = time.perf_counter()
try:
    shape, error = list(decode_pixels(data, {long_side})[0].shape), None
except UserError as err:
    shape, error = None, str(err)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mb": (kib("VmHWM:") - before) / 1024, "shape": shape, "error": error}}))
"""


def camera_jpeg(path: Path, size: tuple[int, int]) -> None:
    photo = Image.open(io.BytesIO(read_source("builtin:tubingen", "content"))).convert("RGB")
    big = np.asarray(photo.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(0).normal(0, 4, big.shape[:2] + (1,)).astype(np.int16)  # luminance noise, as a sensor's
    Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def measure(path: Path, long_side: int, warm: Path) -> dict:
    code = MEASURE.format(repo=str(REPO), path=str(path), long_side=long_side, warm=str(warm))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def colour_rows() -> list[str]:
    photo = Image.open(io.BytesIO(read_source("builtin:tubingen", "content"))).convert("RGB")
    rows = []
    for name, profile in [
        ("Adobe RGB (1998)", rgb_profile(ADOBE_RGB_PRIMARIES, D65, (ADOBE_RGB_GAMMA,), "Adobe RGB (1998)")),
        ("Display P3", rgb_profile(P3_PRIMARIES, D65, SRGB_CURVE, "Display P3")),
    ]:
        buffer = io.BytesIO()
        photo.save(buffer, "PNG", icc_profile=profile)
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        reference = np.asarray(ImageCms.profileToProfile(photo, source, ImageCms.createProfile("sRGB"))).astype(float)
        now = decode_pixels(buffer.getvalue())[0].permute(1, 2, 0).numpy().astype(float)
        before = np.asarray(photo).astype(float)
        # Saturation as chroma: the spread of a pixel's channels (max - min), averaged.
        chroma = [float(np.mean(image.max(-1) - image.min(-1))) for image in (before, reference)]
        rows.append(
            f"| {name} | {np.abs(before - reference).mean():.1f} / {np.abs(before - reference).max():.0f} "
            f"| {100 * (1 - chroma[0] / chroma[1]):.0f}% | {np.abs(now - reference).mean():.2f} / {np.abs(now - reference).max():.0f} |"
        )
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        warm = folder / "warm.jpg"
        Image.new("RGB", (64, 48), (90, 120, 200)).save(warm)
        print("| file | bytes | result's long side | decode s | peak memory MB | decoded to |")
        print("| --- | --- | --- | --- | --- | --- |")
        for size in [(12000, 9000), (16320, 12240)]:
            path = folder / f"{size[0]}x{size[1]}.jpg"
            camera_jpeg(path, size)
            for long_side in (256, 1024):
                row = measure(path, long_side, warm)
                print(f"| JPEG {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} Mpx) | {path.stat().st_size:,} | {long_side} "
                      f"| {row['seconds']:.2f} | {row['peak_mb']:.0f} | {row['shape'] or row['error']} |")
            path.unlink()
        padded = 16385
        bombs = [
            ("PNG 10000x10000 (100 Mpx)", png_bytes(10_000, 10_000)),
            ("PNG 20000x20000 (400 Mpx)", png_bytes(20_000, 20_000)),
            ("PNG 65535x65535 (4.3 Gpx)", png_bytes(65_535, 65_535)),
            (f"PNG {padded}x{padded}, padded", png_bytes(padded, padded, padded * padded // PIXELS_PER_BYTE + 1)),
        ]
        for name, data in bombs:
            path = folder / "bomb.png"
            path.write_bytes(data)
            row = measure(path, 256, warm)
            assert row["error"], name
            reason = "bytes" if "pixels a byte" in row["error"] else f"ceiling ({MAX_DECODED_PIXELS:,})"
            print(f"| {name} | {len(data):,} | 256 | {row['seconds']:.4f} | {row['peak_mb']:.0f} | refused: {reason} |")
    print()
    print("| profile (built-in photo, 512x384) | ignoring it (before): mean / max levels off | saturation lost | converting (now): mean / max |")
    print("| --- | --- | --- | --- |")
    print("\n".join(colour_rows()))


if __name__ == "__main__":
    main()
