"""How long a run of the page takes on this machine, for the estimates next to the presets and under the
controls: seconds a step per megapixel, measured, not guessed.

Measured when the server starts, before any visitor's run: a short run of the server's own configuration
(its method, precision and device, so bf16 or a GPU are in the figure) at ``BENCH_SIDE`` px, in the run
thread, timed from its second step to its last (the first builds the targets and warms up). Then again
from each run of the page that went for at least ``MIN_STEPS`` steps at one size. One step is one forward
and backward pass for Adam and L-BFGS alike, so its cost follows the pixels; it grows a little faster
than they do (docs/lab/quality.md's 4K run: 3.9 s/Mpx at 960 px, 5.2 at 1920 px), so an estimate uses the
measurement nearest to its size. Coarse-to-fine stages count at their own sizes. A photo of 4:3 is assumed.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional, Sequence

from nst_lightning.inputs.sources import BUILTIN_PREFIX
from nst_lightning.scale.multiscale import stage_sizes
from nst_lightning.ui.live import Update
from nst_lightning.ui.runner import Outcome, Run, execute, write_record

BENCH_SIDE = 256  # the smallest size where a step is mostly the network's work (docs/lab/performance.md: 1-2% overhead)
BENCH_STEPS = 6
ASPECT = 0.75


def megapixels(side: float) -> float:
    return side * side * ASPECT / 1e6


class Speed:
    """The measurements (long side px -> seconds a step per megapixel), filled in by ``measure`` and ``record``."""

    def __init__(self) -> None:
        self._rates: dict[int, float] = {}
        self._lock = threading.Lock()
        self.failed = False

    @property
    def measured(self) -> bool:
        with self._lock:
            return bool(self._rates)

    def record(self, side: int, height: int, width: int, seconds_per_step: float) -> None:
        if seconds_per_step > 0 and height * width > 0:
            with self._lock:
                self._rates[side] = seconds_per_step / (height * width / 1e6)

    def rate(self, side: float) -> Optional[float]:
        """Seconds a step per megapixel at ``side`` px: the measurement nearest in size."""
        with self._lock:
            if not self._rates:
                return None
            nearest = min(self._rates, key=lambda measured: abs(math.log(measured / max(side, 1))))
            return self._rates[nearest]

    def seconds(self, side: int, steps: int, stages: Sequence[int] = (), cost: float = 1.0) -> Optional[float]:
        """A run's seconds: ``steps`` steps with the long side ``side`` px, ``stages`` steps at each smaller
        size first (coarse to fine, ``--model.stage_steps``), each ``cost`` times the measured step's (a
        style loss slower than Gram's); None before anything is measured."""
        if self.rate(side) is None or side < 1 or steps < 1:
            return None
        sizes, left, total = stage_sizes(side, len(stages) + 1), steps, 0.0
        for size, count in zip(sizes, [*stages, steps]):
            count = min(count, left) if size != sizes[-1] else left
            total += count * (self.rate(size) or 0.0) * megapixels(size)
            left -= count
        return total * cost

    def estimate(self, side: int, steps: int, stages: Sequence[int] = (), cost: float = 1.0) -> str:
        """``about 2 min`` for the page; or why there is no figure yet."""
        seconds = self.seconds(side, steps, stages, cost)
        if seconds is None:
            return "time unknown (this machine's speed could not be measured)" if self.failed else "time being measured…"
        return f"about {duration(seconds)}"

    def measure(self, defaults: Sequence[str], root: Path, side: int = BENCH_SIDE) -> None:
        """A short run of the server's configuration at ``side`` px, in the run thread; its speed recorded.
        Its files go into a temporary folder under ``root`` (removed after) and it is never listed."""
        folder = Path(tempfile.mkdtemp(prefix=".speed-", dir=root))
        (folder / "run").mkdir()
        try:
            args = [
                "fit", *defaults, "--data.content", f"{BUILTIN_PREFIX}tubingen", "--data.style", f"{BUILTIN_PREFIX}starry_night",
                "--data.image_size", str(side), "--trainer.max_steps", str(BENCH_STEPS), "--model.stage_steps", "null",
                "--trainer.logger.init_args.save_dir", str(folder), "--trainer.logger.init_args.name", "",
                "--trainer.logger.init_args.version", "run", "--checkpoint.every_n_train_steps", str(BENCH_STEPS),
            ]
            first: Optional[Update] = None
            last: Optional[Update] = None
            shape = (0, 0)
            write_record(folder / "run", {"args": args, "steps": 0})  # what the run thread updates at the end
            for update in execute(Run(folder / "run", args), BENCH_STEPS):
                if isinstance(update, Outcome):
                    if update.error is not None:  # the operator's to know; the page says "time unknown"
                        print(f"nst_lightning: the page's time estimates: its speed run failed: {update.error}", file=sys.__stderr__, flush=True)
                    break
                if update.step >= 1 and first is None:
                    first = update
                if update.image is not None:
                    shape = update.image.shape
                last = update
            if first is not None and last is not None and last.step > first.step and shape[0]:
                self.record(side, shape[0], shape[1], (last.seconds - first.seconds) / (last.step - first.step))
            else:
                self.failed = True
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def measure_in_background(self, defaults: Sequence[str], root: Path, side: int = BENCH_SIDE) -> None:
        root.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self.measure, args=(list(defaults), root, side), name="page-speed", daemon=True).start()


def duration(seconds: float) -> str:
    """Rounded as a person says it: 40 s, 3 min, 1 h 20 min."""
    if seconds < 60:
        return f"{max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
