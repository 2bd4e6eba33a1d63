"""The memory a run adds at its peak, measured in a fresh process, and what the memory model
(``scale/memory.py``) estimates for it: how the model is checked, by ``benchmarks/memory_model.py`` on
many sizes and by ``tests/scale/test_memory.py`` on a few.

A measurement is a fresh process (``measure``, which runs this module): a 48 px warm-up run (torch,
oneDNN and Lightning's first-call costs), then the run measured, through ``Trainer.fit`` with random
weights. The peak restarts (``/proc/self/clear_refs``) when the trainer sets the module up, where the
CLI makes its estimate, so "added" is what the run adds to the process then, as the estimate is.
Linux only (``/proc``).

    python -m nst_lightning.evaluation.peak '{"image_size": 512, "tile_size": 256}'
"""

from __future__ import annotations

import json
import os
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
    module = StyleTransfer(weights="random", tile_size=options.get("tile_size"), style_loss=options.get("style_loss", "gram"))
    return estimate_of(module, data, options.get("precision", "32"))


def measure(options: dict, env: Optional[dict] = None, timeout: Optional[float] = None) -> dict:
    """``child(options)`` in a fresh process, with ``env`` added to its environment."""
    command = [sys.executable, "-m", "nst_lightning.evaluation.peak", json.dumps(options)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the measurement of {options} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
