"""benchmarks/gpu_check.py runs: here with --smoke (tiny sizes, on the CPU), as a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_gpu_check_runs_with_tiny_sizes_and_prints_each_section():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--device", "cpu", "--peak-tflops", "1", "0.1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    headings = ("## Trainer.fit at 32 px", "## Host syncs per training step", "## One tiled step at 64 px", "## Trainer.fit against the plain loop")
    for heading in headings:
        assert heading in out, out
    rows = [line for line in out.splitlines() if line.startswith("| 1 | 32 |") or line.startswith("| 2 | 32 |")]
    assert [row.split(" | ")[2] for row in rows] == ["1x3x24x32", "2x3x24x32"]  # K photos as one [K, 3, H, W] image
    assert all("%" in row.split(" | ")[-3] for row in rows)  # a fraction of the given bf16 peak
    assert "x the forward" in out and "fit / plain" in out
