"""The README's quick start runs as written: its shell commands in order, as real processes, in a fresh
directory holding only the configs (as a fresh clone would), at debug sizes; then every run directory and
file the quick start names is there, and its resume continued the run it says."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, checkpoint, shared_weights_path

README = REPO / "README.md"
PROGRAM = "nst-lightning"
# Debug sizes: the quick start's own steps are minutes; these keep what it says (directories, files, a
# resume that goes further) at a few seconds a command. Without the real weights, untrained ones: the
# quick start's claims are about runs and files, not about how the result looks.
SIZE = ["--data.image_size", "48"]
STEPS, MORE_STEPS = "2", "4"


def quick_start() -> str:
    text = README.read_text()
    match = re.search(r"^## Quick start\n(.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Quick start' section"
    return match.group(1)


def commands(section: str) -> list[list[str]]:
    """The shell commands of the section's ```bash blocks, in order, continuation lines joined."""
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


def at_debug_size(words: list[str], weights: str) -> list[str]:
    """The command as this test runs it: the same options, at debug sizes, with local weights; a command
    that sets its own number of steps (to go further) keeps going further than the others."""
    assert words[0] == PROGRAM, f"the quick start runs {words[0]!r}, which this test does not know how to run"
    args = list(words[1:])
    if "--trainer.max_steps" in args:
        args[args.index("--trainer.max_steps") + 1] = MORE_STEPS
    else:
        args += ["--trainer.max_steps", STEPS]
    return [sys.executable, "-m", "nst_lightning", *args, *SIZE, "--model.weights", weights]


@pytest.mark.slow
def test_the_quick_start_runs_as_written_in_order(tmp_path):
    section = quick_start()
    steps = commands(section)
    assert len(steps) >= 2, "the quick start should show a first run and what comes next"
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    weights = str(shared_weights_path() or "random")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for words in steps:
        done = subprocess.run(at_debug_size(words, weights), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{shlex.join(words)}\nexit {done.returncode}:\n{done.stderr[-3000:]}"

    named = sorted(set(re.findall(r"`(lightning_logs/[^`\s]+)`", section)))
    assert named, "the quick start should say where its results go"
    for path in named:
        assert (tmp_path / path).exists(), f"the quick start names {path}, which its commands did not make"
    # Every run the commands made is one the quick start names: the resume went on in the latest run's
    # directory (made no new one), to the steps it asked for.
    runs = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "lightning_logs").glob("*/*") if p.is_dir()}
    named_runs = {"/".join(Path(path).parts[:3]) for path in named}
    assert runs == named_runs, f"runs made: {sorted(runs)}; the quick start names {sorted(named_runs)}"
    resumed = [words for words in steps if "--ckpt_path" in words]
    if resumed:
        latest = max(runs, key=lambda run: int(run.rsplit("_", 1)[-1]) if run.rsplit("_", 1)[-1].isdigit() else -1)
        assert checkpoint(tmp_path / latest / "checkpoints" / "last.ckpt")["global_step"] == int(MORE_STEPS)
