"""Helpers of the batch tests: the command in-process and in a real process, its outputs."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from nst_lightning.__main__ import dispatch
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO


def batch(*args: str, contents: tuple[str, ...] = ("photos",), styles: tuple[str, ...] = ("s1.png", "s2.png"), out: str = "styled") -> int:
    """``batch --config configs/debug.yaml`` in this process: its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        dispatch(["batch", "--config", DEBUG_CONFIG, "--contents", *contents, "--styles", *styles, "--out", out, *args])
    return exit_info.value.code


def batch_process(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m nst_lightning batch --config configs/debug.yaml ARGS``, a process of its own, to its end."""
    command = ["batch", "--config", DEBUG_CONFIG, "--trainer.enable_progress_bar", "false", *args]
    return forked.run(command, cwd=cwd, timeout=600, env=os.environ | {"PYTHONPATH": str(REPO)})


def summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def batch_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(("batch:", "nst_lightning"))]
