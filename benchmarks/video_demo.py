"""docs/guide/video.md's strip and clip: the input, independent still runs and ``video``, side
by side, from a run of ``benchmarks/video_consistency.py``.

    python benchmarks/video_demo.py --clip /tmp/video-consistency/pan --video video_w1000_s50 \\
        --strip docs/images/video_strip.jpg --gif docs/images/video_pan.gif --frames 1 4 8 12
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw


def frames(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", required=True, help="a clip's folder of video_consistency.py's output")
    parser.add_argument("--video", required=True, help="the video run's folder name in it")
    parser.add_argument("--strip", required=True)
    parser.add_argument("--gif", required=True)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4, 8, 12])
    args = parser.parse_args()
    clip = Path(args.clip)
    rows = {
        "input": frames(clip / args.video / "input"),
        "independent": [Image.open(p).convert("RGB") for p in sorted((clip / "independent").glob("*/generated.png"))],
        "video": frames(clip / args.video / "frames"),
    }
    width, height = rows["input"][0].size
    label = 90
    strip = Image.new("RGB", (label + width * len(args.frames), height * len(rows)), "white")
    draw = ImageDraw.Draw(strip)
    for r, (name, images) in enumerate(rows.items()):
        draw.text((6, r * height + height // 2 - 6), name, fill="black")
        for c, n in enumerate(args.frames):
            strip.paste(images[n - 1], (label + c * width, r * height))
    strip.save(args.strip, quality=92)
    # The clip: independent runs on the left, video on the right, at 12 frames a second.
    pairs = []
    for independent, video in zip(rows["independent"], rows["video"]):
        both = Image.new("RGB", (2 * width + 4, height), "white")
        both.paste(independent, (0, 0))
        both.paste(video, (width + 4, 0))
        pairs.append(both)
    pairs[0].save(args.gif, save_all=True, append_images=pairs[1:], duration=83, loop=0)
    print(f"{args.strip}: {strip.size[0]}x{strip.size[1]}; {args.gif}: {len(pairs)} frames")


if __name__ == "__main__":
    main()
