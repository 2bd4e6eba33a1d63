"""Jobs per hour of ``batch``: one job at a time against ``--batch_size K``, and Ray's cost per job.

Each measurement is a whole ``python -m nst_lightning batch`` command timed from outside (wall
clock, process start included, as a user sees it) on a fresh output folder: ``--jobs`` crops of the
built-in Tübingen photo (all of one size, so that they can be grouped) in the built-in Starry Night,
``--steps`` Adam steps each, untrained VGG19 (speed does not depend on the weights' values).

    python benchmarks/batch_benchmark.py --sizes 128 256 --batch-sizes 1 2 4 --jobs 8 --steps 20
    python benchmarks/batch_benchmark.py --ray --sizes 128 --jobs 4 12 --steps 8   # Ray's fixed and per-job cost

Prints markdown tables; docs/lab/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_lightning.inputs.sources import read_source  # noqa: E402


def make_photos(folder: Path, count: int) -> None:
    """``count`` different 4:3 crops of the built-in photo, all 384x288 before resizing."""
    import io

    photo = Image.open(io.BytesIO(read_source("builtin:tubingen", "content"))).convert("RGB")
    folder.mkdir(parents=True)
    for k in range(count):
        left = (k * 17) % (photo.width - 384)
        top = (k * 11) % (photo.height - 288)
        photo.crop((left, top, left + 384, top + 288)).save(folder / f"crop{k:02d}.png")


def run_batch(work: Path, size: int, steps: int, jobs: int, *extra: str) -> float:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    photos = work / f"photos{jobs}"
    if not photos.exists():
        make_photos(photos, jobs)
    command = [
        sys.executable, "-m", "nst_lightning", "batch", "--config", str(REPO / "configs/debug.yaml"),
        "--contents", str(photos), "--styles", "builtin:starry_night", "--out", str(out),
        "--data.image_size", str(size), "--trainer.max_steps", str(steps), "--checkpoint.every_n_train_steps", str(steps),
        "--image_logger.every_n_steps", str(steps), "--trainer.log_every_n_steps", str(steps), *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ray", action="store_true", help="sequential against --launcher ray instead (batch size 1)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.steps} Adam steps a job\n")
    with tempfile.TemporaryDirectory(prefix="nst_batch_bench_") as tmp:
        work = Path(tmp)
        run_batch(work, 64, 2, 2)  # warm the file cache and the imports
        if args.ray:
            print("| size | jobs | sequential s | ray s | ray - sequential, s |\n| --- | --- | --- | --- | --- |")
            extra = {}
            for size in args.sizes:
                for jobs in args.jobs:
                    sequential = run_batch(work, size, args.steps, jobs)
                    ray = run_batch(work, size, args.steps, jobs, "--launcher", "ray")
                    extra[jobs] = ray - sequential
                    print(f"| {size} | {jobs} | {sequential:.1f} | {ray:.1f} | {ray - sequential:+.1f} |", flush=True)
            if len(extra) >= 2:
                (a, da), (b, db) = sorted(extra.items())[0], sorted(extra.items())[-1]
                per_job = (db - da) / (b - a)
                print(f"\nRay: {da - per_job * a:.1f} s once (starting the local instance), {per_job:+.2f} s per job")
            return
        print("| size | batch size | seconds | jobs per hour | vs one at a time |\n| --- | --- | --- | --- | --- |")
        for size in args.sizes:
            for jobs in args.jobs:
                base = None
                for batch_size in args.batch_sizes:
                    seconds = run_batch(work, size, args.steps, jobs, "--batch_size", str(batch_size))
                    base = base or seconds
                    print(f"| {size} | {batch_size} | {seconds:.1f} | {3600 * jobs / seconds:.0f} | {base / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
