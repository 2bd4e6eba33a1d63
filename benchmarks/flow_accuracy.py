"""How good and how fast OpenCV's DIS presets are, on real frames with the true flow (MPI-Sintel).

For ``sintel_medium`` and ``sintel_hard`` of ``../shared/examples/video`` (frames 2 and 3, 1024x436,
the true flow 2 -> 3, its occlusions and where it is undefined), each preset and each working size
(1024 = full, 512, 256 px on the long side: frames downscaled with INTER_AREA, the truth with
INTER_NEAREST so that no vector is an average of two objects', its vectors scaled):

- EPE: the mean end-point error over the valid pixels, and over the valid non-occluded ones, in
  pixels of the working size and (x 1024 / size) of the full frame;
- milliseconds per flow pair: the median of 3 ``dis_flow`` calls after one untimed (OpenCV's own
  threads: all cores), grey conversion included;
- the consistency mask of the forward 2 -> 3 and backward 3 -> 2 flows against the true occlusions:
  the recall of occluded pixels (the fraction the mask zeroes) and the fraction of non-occluded
  pixels it wrongly zeroes (both over valid pixels).

Then what one flow costs to store in ``FlowCache`` (float32 .npy as it stores, float16, compressed).

    python benchmarks/flow_accuracy.py           # prints markdown tables; docs/guide/video.md quotes them
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_lightning.video.flow import PRESETS, consistency_mask, dis_flow, end_point_error  # noqa: E402

EXAMPLES = REPO.parent / "shared" / "examples" / "video"
SIZES = (1024, 512, 256)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127


def load(folder: Path) -> dict[str, np.ndarray]:
    truth = cv2.readOpticalFlow(str(folder / "truth" / "flow_0002_to_0003.flo"))
    return {
        "a": read_rgb(folder / "frame_0002.png"),
        "b": read_rgb(folder / "frame_0003.png"),
        "flow": truth,
        "occluded": read_mask(folder / "truth" / "occlusions_0002.png"),
        "invalid": read_mask(folder / "truth" / "invalid_0002.png"),
    }


def at_size(data: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    h, w = data["a"].shape[:2]
    if size >= max(h, w):
        return data
    nw, nh = round(w * size / max(h, w)), round(h * size / max(h, w))
    small = {k: cv2.resize(data[k], (nw, nh), interpolation=cv2.INTER_AREA) for k in ("a", "b")}
    small["flow"] = cv2.resize(data["flow"], (nw, nh), interpolation=cv2.INTER_NEAREST) * np.array([nw / w, nh / h], np.float32)
    for k in ("occluded", "invalid"):
        small[k] = cv2.resize(data[k].astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    return small


def measure(data: dict[str, np.ndarray], preset: str, repeats: int) -> dict[str, float]:
    mask = consistency_mask(dis_flow(data["a"], data["b"], preset), dis_flow(data["b"], data["a"], preset))
    seconds = []  # timed after that first pair, which also pays for OpenCV's first allocations
    for _ in range(repeats):
        start = time.perf_counter()
        forward = dis_flow(data["a"], data["b"], preset)
        seconds.append(time.perf_counter() - start)
    valid = ~data["invalid"]
    occluded, visible = valid & data["occluded"], valid & ~data["occluded"]
    zeroed = mask == 0
    return {
        "epe": end_point_error(forward, data["flow"], valid),
        "epe_noc": end_point_error(forward, data["flow"], visible),
        "seconds": statistics.median(seconds),
        "recall": float(zeroed[occluded].mean()),
        "false": float(zeroed[visible].mean()),
        "kept": float(mask[valid].mean()),
    }


def storage(flow: np.ndarray) -> str:
    sizes = {}
    for name, save in (
        ("float32 .npy (FlowCache)", lambda h: np.save(h, flow)),
        ("float16 .npy", lambda h: np.save(h, flow.astype(np.float16))),
        ("float32 .npz compressed", lambda h: np.savez_compressed(h, flow=flow)),
        ("float16 .npz compressed", lambda h: np.savez_compressed(h, flow=flow.astype(np.float16))),
    ):
        buffer = io.BytesIO()
        save(buffer)
        sizes[name] = buffer.tell()
    error = float(np.abs(flow.astype(np.float16).astype(np.float32) - flow).max())
    lines = ["| format | bytes per flow |", "| --- | ---: |"]
    lines += [f"| {name} | {size / 1e6:.2f} MB |" for name, size in sizes.items()]
    return "\n".join(lines) + f"\n\nfloat16 rounds this flow's vectors by up to {error:.4f} px."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="the folder of sintel_medium/ and sintel_hard/")
    parser.add_argument("--repeats", type=int, default=3, help="timed flows per setting (the median is shown)")
    args = parser.parse_args()
    if not (args.examples / "sintel_medium").is_dir():
        sys.exit(f"no sintel_medium/ in {args.examples}: give the folder with --examples")
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads\n")
    print(
        "| clip | size | preset | EPE valid | EPE non-occl. | EPE valid, full-frame px | ms / pair | occl. recall | non-occl. zeroed | mask kept |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    flow = None
    for clip in ("sintel_medium", "sintel_hard"):
        data = load(args.examples / clip)
        for size in SIZES:
            small = at_size(data, size)
            for preset in PRESETS:
                m = measure(small, preset, args.repeats)
                full = m["epe"] * max(data["a"].shape[:2]) / max(small["a"].shape[:2])
                print(
                    f"| {clip} | {size} | {preset} | {m['epe']:.2f} | {m['epe_noc']:.2f} | {full:.2f} | {m['seconds'] * 1e3:.1f} "
                    f"| {m['recall']:.1%} | {m['false']:.1%} | {m['kept']:.1%} |",
                    flush=True,
                )
        flow = dis_flow(data["a"], data["b"], "medium") if flow is None else flow
    print("\nStoring one 1024x436 flow:\n")
    print(storage(flow))


if __name__ == "__main__":
    main()
