"""What reading a clip costs in memory as it grows: the figures docs/guide/video.md quotes.

A synthetic clip (``--frames`` frames, default 3000, of 96x72 at 25 fps, H.264: a pan over the built-in
Tübingen photo, 2 px a frame, wrapping around) is made once. Then, each in a fresh process:

- **extract**: the reading stage of ``video`` (``video/clip.extract``: decode each frame, resize it to
  the working size, write it to ``input/``, measure it for cuts), for the first 300, 1000 and 3000
  frames at ``--size`` (384 px, the size of the issue's figure: each frame 384x288 once resized).
  Its peak is the process's peak resident set during ``extract`` over what it held just before
  (Linux: the peak restarts through ``/proc/self/clear_refs``);
- **video** (``--full``): the whole ``video`` command on the first 100 and 300 frames at a tiny size
  (``configs/debug.yaml``, 32 px, one step a frame, random weights), its peak resident set as
  ``wait4`` reports it for that process (everything: Python, torch, a fit per frame, the encoding).

    python benchmarks/video_memory.py --full         # prints a markdown table

It measures this checkout's ``nst_lightning``, or another's given first on the path, to compare:
``PYTHONPATH=OTHER python benchmarks/video_memory.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

MEASURE = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from nst_lightning.video.clip import VideoOptions, extract
from nst_lightning.video.layout import ClipDirectory

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

out = Path({out!r})
options = VideoOptions(input={clip!r}, style="unused", out=out, start=0, stop={count})
open("/proc/self/clear_refs", "w").write("5")  # Linux: the peak resident set restarts from now
before = kib("VmRSS:")
start = time.perf_counter()
manifest = extract(options, ClipDirectory(out), {size}, {{}})
seconds = time.perf_counter() - start
print(json.dumps({{"frames": manifest.count, "size": [manifest.width, manifest.height], "seconds": seconds,
                  "before_mb": before / 1024, "peak_mb": (kib("VmHWM:") - before) / 1024}}))
"""


def make_clip(path: Path, count: int, size: tuple[int, int] = (96, 72)) -> Path:
    """``count`` frames of a pan over Tübingen, ``size``, 2 px a frame, wrapping around (H.264, 25 fps)."""
    from nst_lightning.inputs.sources import read_source

    photo = Image.open(io.BytesIO(read_source("builtin:tubingen", "clip"))).convert("RGB")
    width, height = size
    strip = np.asarray(photo.resize((round(photo.width * height / photo.height), height), Image.Resampling.LANCZOS))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25), options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(count):
            pixels = np.ascontiguousarray(np.roll(strip, -2 * t, axis=1)[:, :width])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = t
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def measure_extract(root: Path, clip: Path, count: int, size: int, out: Path) -> dict:
    code = MEASURE.format(root=str(root), clip=str(clip), count=count, size=size, out=str(out))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_video(root: Path, clip: Path, count: int, out: Path, style: Path) -> dict:
    command = [sys.executable, "-m", "nst_lightning", "video", "--config", str(REPO / "configs" / "debug.yaml"),
               "--data.image_size", "32", "--trainer.max_steps", "1", "--video.frame_steps", "1", "--video.preview_every", "0",
               "--input", str(clip), "--style", str(style), "--out", str(out), "--frames", f"0:{count}"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONPATH": str(root)})
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"video on {count} frames failed: {err[-2000:]}")
    return {"frames": count, "seconds": time.perf_counter() - start, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="the clip's length (the longest measured)")
    parser.add_argument("--counts", type=int, nargs="+", default=[300, 1000, 3000], help="frames extracted in each measurement")
    parser.add_argument("--size", type=int, default=384, help="the working size frames are extracted at")
    parser.add_argument("--full", action="store_true", help="also the whole video command on --full_counts frames")
    parser.add_argument("--full_counts", type=int, nargs="+", default=[100, 300])
    args = parser.parse_args()
    # This checkout's, or the one PYTHONPATH names (to compare): the children import the same.
    if not os.environ.get("PYTHONPATH"):
        sys.path.insert(1, str(REPO))
    import nst_lightning

    root = Path(nst_lightning.__file__).parents[1]
    print(f"nst_lightning from {root}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="video_memory_") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        clip = make_clip(tmp / "pan.mp4", max(args.frames, *args.counts))
        print(f"clip: {clip.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        print("| stage | frames | working size | seconds | peak MB over the process before it |")
        print("| --- | ---: | --- | ---: | ---: |")
        for count in args.counts:
            result = measure_extract(root, clip, count, args.size, tmp / f"extract_{count}")
            width, height = result["size"]
            print(f"| extract | {result['frames']} | {width}x{height} | {result['seconds']:.0f} | {result['peak_mb']:.0f} |", flush=True)
        if args.full:
            Image.new("RGB", (48, 48), (10, 200, 90)).save(tmp / "style.png")
            print("\n| stage | frames | seconds | peak MB of the whole process |")
            print("| --- | ---: | ---: | ---: |")
            for count in args.full_counts:
                result = measure_video(root, clip, count, tmp / f"video_{count}", tmp / "style.png")
                print(f"| video command | {count} | {result['seconds']:.0f} | {result['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
