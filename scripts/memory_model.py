"""The memory model (nst_lightning/scale/memory.py) against the peak memory of real runs.

Each measurement is a fresh process: a 48 px warm-up run (torch, oneDNN and Lightning's first-call
costs), then ``--steps`` steps at the size measured, through ``Trainer.fit`` with random weights. The
peak restarts (``/proc/self/clear_refs``) when the trainer sets the module up, where the CLI makes its
estimate, so "peak" is what the run adds to the process then, as the estimate is. Identical runs are
repeated: a tiled run's peak varies between them (what the allocator keeps of each tile's freed
working set). Prints a markdown table: size, tile, tiles per pass, estimate, the peaks' min / median /
max, and the estimate over the largest and the smallest peak.

    python scripts/memory_model.py --sizes 512 768 1024 --tiles 256 384 --repeats 3      # docs/performance.md
    python scripts/memory_model.py --sizes 768 --tiles 256 --precision bf16-mixed --repeats 3
    python scripts/memory_model.py --sizes 768 1024 --tiles 256 --repeats 3 --keep-freed   # no release between tiles

``--child`` runs one measurement and prints it as JSON (``tests/scale/test_memory.py`` uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def status(key: str) -> int:
    """A field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))


def child(options: dict) -> dict:
    """One measurement, in this (fresh) process: ``options`` are ``image_size``, ``precision``,
    ``steps``, ``release_freed`` (``TiledLoss``'s) and StyleTransfer's own (``tile_size``, ...)."""
    import lightning.pytorch as pl

    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    from nst_lightning.model.preflight import memory_model_of
    from nst_lightning.scale import tiling
    from nst_lightning.scale.memory import crop_of

    released = tiling.release_freed_memory
    released_seconds = [0.0, 0.0]

    def timed_release(device):  # the seconds (wall, and CPU of this thread) spent handing freed memory back
        started = time.perf_counter(), time.thread_time()
        released(device)
        released_seconds[0] += time.perf_counter() - started[0]
        released_seconds[1] += time.thread_time() - started[1]

    tiling.release_freed_memory = timed_release

    class FromSetup(pl.Callback):
        """The peak from the module's setup on (after the datamodule's, where the CLI plans memory),
        and each step's seconds (wall, and CPU of all threads: on a shared machine it varies less),
        minor page faults and seconds spent releasing freed memory (wall, CPU)."""

        def setup(self, trainer, pl_module, stage):
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # the peak restarts from here
            self.before, self.steps = status("VmRSS:"), []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.started = self.now()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append([end - start for start, end in zip(self.started, self.now())])

        @staticmethod
        def now() -> tuple:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return time.perf_counter(), time.process_time(), usage.ru_minflt, *released_seconds

    options = dict(options)
    size, precision, steps = options.pop("image_size"), options.pop("precision", "32"), options.pop("steps", 2)
    release_freed = options.pop("release_freed", True)
    for image_size, max_steps in [(48, 1), (size, steps)]:  # the first warms up torch, oneDNN and Lightning
        from_setup, data = FromSetup(), StyleTransferData(image_size=image_size)
        module = StyleTransfer(weights="random", **options)
        if module.tiled_loss is not None:
            module.tiled_loss.release_freed = release_freed
        trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[from_setup])
        trainer.fit(module, datamodule=data)
    added = status("VmHWM:") - from_setup.before
    height, width = data.size(data.image_size)
    tiled = module.tiled_loss
    crop = crop_of(tiled.tile_size, height, width, tiled.halo, tiled.align) if tiled else None
    estimate = memory_model_of(module, data, precision).estimate(height, width, crop)
    tiles = len(tiled.tiles(height, width)) if tiled else 1
    return {"added": added, "estimate": estimate, "height": height, "width": width, "tiles": tiles, "steps": from_setup.steps}


def measure(options: dict, env: Optional[dict] = None, timeout: Optional[float] = None) -> dict:
    """``child(options)`` in a fresh process, with ``env`` added to its environment."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(options)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
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
    parser.add_argument("--keep-freed", action="store_true", help="tiled: do not hand freed memory back between tiles (as before)")
    parser.add_argument("--raw", help="append each run's measurements to this file, one JSON object a line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    env = dict(item.split("=", 1) for item in args.env)
    settings = [f"precision {args.precision}", f"{args.steps} steps", f"{args.repeats} runs each", *args.env]
    print(", ".join(settings + (["freed memory kept between tiles"] if args.keep_freed else [])))
    print()
    print(
        "| size (W x H) | tile | tiles per pass | estimate | peak min / median / max | estimate / max | estimate / min "
        "| last step: CPU s, page faults, s releasing |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        for tile in args.tiles:
            if tile >= size:
                continue
            options = {"image_size": size, "precision": args.precision, "steps": args.steps, "tile_size": tile or None}
            runs = []
            for _ in range(args.repeats):
                runs.append(measure({**options, "release_freed": not args.keep_freed}, env))
                if args.raw:
                    with open(args.raw, "a") as raw:
                        raw.write(json.dumps({**options, "keep_freed": args.keep_freed, **runs[-1]}) + "\n")
            peaks = sorted(run["added"] / 1e6 for run in runs)
            first, estimate = runs[0], runs[0]["estimate"] / 1e6
            _, cpu, faults, releasing = (statistics.median(run["steps"][-1][k] for run in runs) for k in range(4))
            print(
                f"| {size} ({first['width']}x{first['height']}) | {tile or 'untiled'} | {first['tiles']} | {estimate:.0f} MB "
                f"| {peaks[0]:.0f} / {statistics.median(peaks):.0f} / {peaks[-1]:.0f} MB | {estimate / peaks[-1]:.2f} "
                f"| {estimate / peaks[0]:.2f} | {cpu:.1f}, {faults / 1e3:.0f}k, {releasing:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
