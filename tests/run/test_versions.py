"""Each run of a config in a version directory of its own (run/_versions.py), through the real CLI:
the README's quick start run twice, resumed with --ckpt_path last, rerun from its result; and the
claims of runs started at the same instant (real processes)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import _forked as forked
from tests.helpers import CONFIGS, checkpoint, info_lines, user_error
from tests.run._claims import claim

# configs/quick.yaml as the README runs it, at the tests' size and with untrained weights.
QUICK = ["fit", "--config", str(CONFIGS / "quick.yaml"), "--model.weights", "random", "--data.image_size", "48"]
AUTO = ["--trainer.logger.init_args.version", "null"]  # configs/debug.yaml names its version; these runs do not


def fit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return forked.run(args, cwd=cwd, timeout=180)


@pytest.mark.slow
def test_the_quick_start_runs_twice_and_last_resumes_the_latest_run(tmp_path):
    runs = tmp_path / "lightning_logs" / "quick"
    for n in range(2):
        result = fit(tmp_path, *QUICK, "--trainer.max_steps", "2")
        assert result.returncode == 0, result.stderr
        assert f"generated image: {Path('lightning_logs/quick') / f'version_{n}' / 'generated.png'}" in result.stdout
    # The copies of the configuration say what the command said: a new version for each run.
    assert yaml.safe_load((runs / "version_1" / "config.yaml").read_text())["trainer"]["logger"]["init_args"]["version"] is None
    result = fit(tmp_path, *QUICK, "--trainer.max_steps", "3", "--ckpt_path", "last")
    assert result.returncode == 0, result.stderr
    latest, config_runs = Path("lightning_logs/quick/version_1"), Path("lightning_logs/quick")
    said = f"--ckpt_path last: continuing {latest}, the latest run in {config_runs} with a checkpoint"
    assert said in result.stderr.splitlines()
    assert checkpoint(runs / "version_1" / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    # The bar counts the run's steps: it starts where the run stopped.
    bar = [line for line in result.stdout.replace("\r", "\n").splitlines() if line.startswith("step ")]
    assert bar[-1].startswith("step 3/3 |") and not any(line.startswith("step 1/3") for line in bar), bar
    # A result reruns as a new run: into the next version, the first runs untouched.
    result = fit(tmp_path, "fit", "--config", str(Path("lightning_logs/quick/version_1/generated.png")))
    assert result.returncode == 0, result.stderr
    assert f"generated image: {Path('lightning_logs/quick/version_2/generated.png')}" in result.stdout
    assert checkpoint(runs / "version_1" / "checkpoints" / "last.ckpt")["global_step"] == 3


@pytest.mark.slow
def test_claims_made_at_the_same_instant_never_share_a_number(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, numbers = context.Event(), context.Queue()
    processes = [context.Process(target=claim, args=(str(tmp_path / "runs"), start, numbers)) for _ in range(6)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=60)
    assert sorted(numbers.get(timeout=5) for _ in processes) == list(range(6))


def test_last_with_no_run_yet_is_a_new_run_and_a_refused_one_leaves_nothing(run_cli, capsys, tmp_path):
    line = user_error(run_cli, capsys, *AUTO, "--data.content", "missing.jpg")
    assert "--data.content: file not found: missing.jpg" in line
    assert not (tmp_path / "lightning_logs").exists()  # the version it had claimed is gone, and its parents
    os.makedirs(tmp_path / "lightning_logs" / "debug" / "version_3" / "checkpoints")  # a run that wrote no checkpoint
    with info_lines() as lines:
        run_cli(*AUTO, "--ckpt_path", "last", "--trainer.max_steps", "2")
    new_run = f"no run in {Path('lightning_logs/debug')} has a checkpoint yet, so this is a new run, {Path('lightning_logs/debug/version_4')}"
    assert f"--ckpt_path last: {new_run}" in lines
    assert checkpoint(tmp_path / "lightning_logs" / "debug" / "version_4" / "checkpoints" / "last.ckpt")["global_step"] == 2


def test_a_named_version_still_refuses_a_second_fresh_run(run_cli, capsys, tmp_path):
    # As before numbered versions (configs/debug.yaml's own, "", is test_cli's): a guard, not a change.
    run_cli("--trainer.logger.init_args.version", "mine", "--trainer.max_steps", "2")
    line = user_error(run_cli, capsys, "--trainer.logger.init_args.version", "mine", "--trainer.max_steps", "2")
    assert "already holds a run" in line and "resume it with --ckpt_path last" in line
    assert not (tmp_path / "lightning_logs" / "debug" / "version_0").exists()
