"""The memory model (nst_lightning/scale/memory.py) against the peak memory of real runs.

Each measurement is a fresh process: a 48 px warm-up run (torch, oneDNN and Lightning's first-call
costs), then ``--steps`` steps at the size measured, through ``Trainer.fit`` with random weights. The
peak restarts (``/proc/self/clear_refs``) when the trainer sets the module up, where the CLI makes its
estimate, so "peak" is what the run adds to the process then, as the estimate is. Identical runs are
repeated: a tiled run's peak varies between them (what the allocator keeps of each tile's freed
working set). Prints a markdown table: size, tile, tiles per pass, estimate, the peaks' min / median /
max, and the estimate over the largest and the smallest peak; ``--raw FILE`` keeps each run's
measurements, and ``--table FILE`` prints them again against the estimate of today's model.

    python scripts/memory_model.py --sizes 512 768 1024 --tiles 256 384 --repeats 3 --raw peaks.jsonl
    python scripts/memory_model.py --sizes 768 --tiles 256 --precision bf16-mixed --repeats 3 --raw peaks.jsonl
    python scripts/memory_model.py --table docs/lab/evaluation/memory/tiled_peaks.jsonl     # docs/lab/performance.md

``--child`` runs one measurement and prints it as JSON (``tests/scale/test_memory.py`` uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional


def status(key: str) -> int:
    """A field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))


def child(options: dict) -> dict:
    """One measurement, in this (fresh) process: ``options`` are ``image_size``, ``precision``,
    ``steps`` and StyleTransfer's own (``tile_size``, ...)."""
    import lightning.pytorch as pl

    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    class FromSetup(pl.Callback):
        """The peak from the module's setup on (after the datamodule's, where the CLI plans memory),
        and each step's seconds (wall, and CPU of all threads: on a shared machine it varies less)."""

        def setup(self, trainer, pl_module, stage):
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # the peak restarts from here
            self.before, self.steps = status("VmRSS:"), []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.started = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append([time.perf_counter() - self.started[0], time.process_time() - self.started[1]])

    options = dict(options)
    size, precision, steps = options.pop("image_size"), options.pop("precision", "32"), options.pop("steps", 2)
    for image_size, max_steps in [(48, 1), (size, steps)]:  # the first warms up torch, oneDNN and Lightning
        from_setup, data = FromSetup(), StyleTransferData(image_size=image_size)
        module = StyleTransfer(weights="random", **options)
        trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[from_setup])
        trainer.fit(module, datamodule=data)
    added = status("VmHWM:") - from_setup.before
    return {"added": added, "before": from_setup.before, **estimate_of(module, data, precision), "steps": from_setup.steps}


def estimate_of(module, data, precision: str) -> dict:
    """The memory model's estimate for a ``StyleTransfer`` and its (loaded) ``StyleTransferData``, the
    result's size and the tiles a pass makes."""
    from nst_lightning.model.preflight import memory_model_of
    from nst_lightning.scale.memory import crop_of

    height, width = data.size(data.image_size)
    tiled = module.tiled_loss
    crop = crop_of(tiled.tile_size, height, width, tiled.halo, tiled.align) if tiled else None
    estimate = memory_model_of(module, data, precision).estimate(height, width, crop)
    return {"estimate": estimate, "height": height, "width": width, "tiles": len(tiled.tiles(height, width)) if tiled else 1}


def estimate_now(options: dict) -> dict:
    """``estimate_of`` for a run of ``options``, by today's model (nothing is run)."""
    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer

    data = StyleTransferData(image_size=options["image_size"])
    data.load()
    return estimate_of(StyleTransfer(weights="random", tile_size=options.get("tile_size")), data, options.get("precision", "32"))


def measure(options: dict, env: Optional[dict] = None) -> dict:
    """``child(options)`` in a fresh process, with ``env`` added to its environment."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(options)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"the measurement of {options} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024], help="long sides in pixels")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 384], help="tile sizes (0: untiled)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--steps", type=int, default=2, help="steps of each run (the test's: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="identical runs of each case")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE added to each run's environment")
    parser.add_argument("--raw", help="append each run's measurements to this file, one JSON object a line")
    parser.add_argument("--table", help="measure nothing: the table of the runs in this --raw file, by today's estimate")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.table:
        with open(args.table) as lines:
            runs = [json.loads(line) for line in lines if line.strip()]
        cases = {}
        for run in runs:
            cases.setdefault((run.get("precision", "32"), run["image_size"], run.get("tile_size") or 0, len(run["steps"])), []).append(run)
        print(f"{len(runs)} runs from {args.table}; estimates by today's model")
        print(*HEADER, sep="\n")
        for _, group in sorted(cases.items()):
            print(row(group, estimate_now(group[0])["estimate"]))
        return
    env = dict(item.split("=", 1) for item in args.env)
    print(", ".join([f"precision {args.precision}", f"{args.steps} steps", f"{args.repeats} runs each", *args.env]))
    print(*HEADER, sep="\n")
    for size in args.sizes:
        for tile in args.tiles:
            if tile >= size:
                continue
            options = {"image_size": size, "precision": args.precision, "steps": args.steps, "tile_size": tile or None}
            runs = []
            for _ in range(args.repeats):
                runs.append({**options, **measure(options, env)})
                if args.raw:
                    with open(args.raw, "a") as raw:
                        raw.write(json.dumps(runs[-1]) + "\n")
            print(row(runs, runs[0]["estimate"]), flush=True)


HEADER = (
    "",
    "| size (W x H) | precision | tile | tiles per pass | steps | estimate | peak min / median / max (runs) "
    "| estimate / max | estimate / min | last step: wall s, CPU s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
)


def row(runs: list[dict], estimate: float) -> str:
    """A table row for identical runs (``measure``'s, with their options)."""
    peaks, first = sorted(run["added"] / 1e6 for run in runs), runs[0]
    wall, cpu = (statistics.median(run["steps"][-1][k] for run in runs) for k in range(2))
    return (
        f"| {first['image_size']} ({first['width']}x{first['height']}) | {first.get('precision', '32')} | {first.get('tile_size') or 'untiled'} "
        f"| {first['tiles']} | {len(first['steps'])} | {estimate / 1e6:.0f} MB | {peaks[0]:.0f} / {statistics.median(peaks):.0f} / {peaks[-1]:.0f} MB ({len(peaks)}) "
        f"| {estimate / 1e6 / peaks[-1]:.2f} | {estimate / 1e6 / peaks[0]:.2f} | {wall:.1f}, {cpu:.1f} |"
    )


if __name__ == "__main__":
    main()
