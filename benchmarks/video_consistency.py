"""Flicker, style and speed of ``video`` against independent still runs (``batch`` over the frames).

For each clip: ``video`` with ``--config`` (default ``configs/quick.yaml``) and each setting given;
``batch`` over the same frames (the clip's ``input/``, at the same working size) with the same
config; and the input frames themselves (the floor). Printed per clip and setting:

- E_warp (Lai et al. 2018, ``video.flow.warping_error``: flow and mask from the input frames), and
  its ratio to the independent runs' (the target: at most 0.2);
- the mean style and content distance over the frames (``evaluation.scorer``, the harness's judge),
  as ratios to the independent runs' (the style target: at most 1.3);
- seconds per frame after the first against the first frame, a still run of the same size (target
  at most 0.3), and what the flow costs (DIS on both directions of every pair) against the total.

    python benchmarks/video_consistency.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --style ../shared/examples/starry_night.jpg --size 160 --out /tmp/video-consistency \\
        --settings "1000 50" "3000 50"

Clips: ``../shared/examples/video/sintel_*`` (4 frames of real footage each) when there, and a pan
over ``builtin:tubingen`` (``--pan_frames`` frames, 2 px a frame at the working size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_lightning.evaluation.scorer import Scorer  # noqa: E402
from nst_lightning.inputs.images import load_image  # noqa: E402
from nst_lightning.video.flow import dis_flow, warping_error  # noqa: E402


def pan_clip(folder: Path, count: int, size: int) -> Path:
    """``count`` frames of ``size`` x ``size * 9 // 16`` panning right over Tübingen, 2 px a frame."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = load_image("builtin:tubingen", 2 * size)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    height = size * 9 // 16
    for i in range(count):
        Image.fromarray(photo[40 : 40 + height, 20 + 2 * i : 20 + 2 * i + size]).save(folder / f"frame_{i + 1:03d}.png")
    return folder


def frames_of(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


def run(command: list[str], log: Path) -> float:
    started = time.monotonic()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed (exit {done.returncode}); see {log}")
    return time.monotonic() - started


def distances(scorer: Scorer, results: list[np.ndarray], inputs: list[np.ndarray], painting: torch.Tensor) -> tuple[float, float]:
    to = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    style = [scorer.style_distance(to(r), painting) for r in results]
    content = [scorer.content_distance(to(r), to(i)) for r, i in zip(results, inputs)]
    return statistics.mean(style), statistics.mean(content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--config", default=str(REPO / "configs/quick.yaml"))
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--pan_frames", type=int, default=12)
    parser.add_argument("--examples", default=str(REPO.parent / "shared/examples/video"))
    parser.add_argument("--settings", nargs="+", default=["1000 50"], help='"TEMPORAL_WEIGHT FRAME_STEPS [FILL [FRAMES_BACK]]" each')
    parser.add_argument("--clips", nargs="*", default=None, help="names of the clips to run (default: all)")
    parser.add_argument("--out", default="/tmp/video-consistency")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = {"pan": pan_clip(out / "pan_frames", args.pan_frames, args.size)}
    for folder in sorted(Path(args.examples).glob("sintel_*")):
        clips[folder.name] = folder
    if args.clips:
        clips = {name: path for name, path in clips.items() if name in args.clips}
    common = ["--config", args.config, "--model.weights", args.weights, "--data.image_size", str(args.size)]
    scorer = Scorer(args.weights)
    painting = load_image(args.style)
    rows = []
    for name, source in clips.items():
        base = out / name
        source_arg = str(source / "frame_*.png") if name != "pan" else str(source)
        for setting in args.settings:
            parts = setting.split()
            weight, steps, fill, earlier = [*parts, *["content", "1"][len(parts) - 2 :]] if len(parts) < 4 else parts
            tag = f"w{weight}_s{steps}" + (f"_{fill}" if fill != "content" else "") + (f"_j{earlier.replace(',', '-')}" if earlier != "1" else "")
            directory = base / f"video_{tag}"
            run([sys.executable, "-m", "nst_lightning", "video", *common, "--input", source_arg, "--style", args.style,
                 "--out", str(directory), "--video.temporal_weight", weight, "--video.frame_steps", steps, "--video.fill", fill,
                 "--video.temporal_frames", earlier], base.with_suffix(f".{tag}.log"))
            inputs = frames_of(directory / "input")
            records = [json.loads(p.read_text()) for p in sorted((directory / "runs").glob("frame_*/frame.json"))]
            flow_started = time.monotonic()
            for a, b in zip(inputs, inputs[1:]):
                dis_flow(a, b), dis_flow(b, a)
            flow_seconds = time.monotonic() - flow_started
            total = sum(r["seconds"] for r in records)
            rows.append({
                "clip": name, "setting": f"video, temporal weight {weight}, {steps} steps a frame, fill {fill}, frames back {earlier}",
                "frames": len(inputs),
                "results": frames_of(directory / "frames"), "inputs": inputs,
                "later_vs_first": statistics.mean(r["seconds"] for r in records[1:]) / records[0]["seconds"],
                "flow_share": flow_seconds / (total + flow_seconds),
            })
        independent = base / "independent"
        if not (independent / "summary.csv").is_file():
            run([sys.executable, "-m", "nst_lightning", "batch", *common, "--contents", str(directory / "input"),
                 "--styles", args.style, "--out", str(independent)], base.with_suffix(".independent.log"))
        inputs = rows[-1]["inputs"]
        results = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(independent.glob("*/generated.png"))]
        rows.append({"clip": name, "setting": "independent still runs (batch)", "frames": len(inputs), "results": results, "inputs": inputs})
        rows.append({"clip": name, "setting": "the input itself", "frames": len(inputs), "results": inputs, "inputs": inputs})
    print(
        "| clip | setting | frames | E_warp | x independent | style distance (x independent) | content distance (x independent) "
        "| s/frame after the first (x the first) | flow share |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in clips:
        mine = [r for r in rows if r["clip"] == name]
        reference = next(r for r in mine if r["setting"].startswith("independent"))
        for r in mine:
            r["e_warp"] = warping_error(r["results"], r["inputs"])
            r["style"], r["content"] = distances(scorer, r["results"], r["inputs"], painting)
        for r in mine:
            speed = f"{r['later_vs_first']:.2f}" if "later_vs_first" in r else ""
            share = f"{100 * r['flow_share']:.2f}%" if "flow_share" in r else ""
            print(f"| {name} | {r['setting']} | {r['frames']} | {r['e_warp']:.4f} | {r['e_warp'] / reference['e_warp']:.2f} | "
                  f"{r['style']:.4f} ({r['style'] / reference['style']:.2f}) "
                  f"| {r['content']:.3f} ({r['content'] / reference['content']:.2f}) | {speed} | {share} |")


if __name__ == "__main__":
    main()
