"""Checkpoints that are not ours, or not for this run: each is refused in one line (exit 2, no
traceback) before anything is allocated from it or written, and the run directory is left as it was;
one saved with ``save_weights_only`` resumes, with a warning.

Each bad checkpoint is a real one this program wrote (two real runs, made once for the module),
changed in one place and saved with ``torch.save``; each refusal is the real CLI path.
"""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from PIL import Image

from nst_lightning.run.entry import cli_main
from tests.helpers import DEBUG_CONFIG, REPO, checkpoint, user_error

RUN = Path("lightning_logs/debug")


def _run_once(directory: Path, *args: str) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setattr(sys, "argv", ["nst_lightning"])
        cli_main(["fit", "--config", DEBUG_CONFIG, *args])
    return checkpoint(directory / RUN / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, dict]:
    """A 4-step Adam run's and a 4-step L-BFGS run's last checkpoints, as data."""
    return {
        "adam": _run_once(tmp_path_factory.mktemp("adam")),
        "lbfgs": _run_once(tmp_path_factory.mktemp("lbfgs"), "--model.optimizer", "lbfgs"),
    }


def crafted(made: dict, path: Path, change: Callable[[dict], None], optimizer: str = "adam") -> Path:
    ckpt = copy.deepcopy(made[optimizer])
    change(ckpt)
    torch.save(ckpt, path)
    return path


def nothing_written(tmp_path: Path) -> bool:
    """No run directory, no file (config.yaml, an event file) anywhere under the save directory."""
    logs = tmp_path / "lightning_logs"
    return not (logs / "debug").exists() and not any(p.is_file() for p in logs.rglob("*"))


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file()}


def state(ckpt: dict) -> dict:
    return ckpt["optimizer_states"][0]["state"][0]


def set_key(mapping_of: Callable[[dict], dict], key, value) -> Callable[[dict], None]:
    return lambda ckpt: mapping_of(ckpt).__setitem__(key, value)


def top(ckpt: dict) -> dict:
    return ckpt


def images(ckpt: dict) -> dict:
    return ckpt["state_dict"]


def checkpoint_callback(ckpt: dict) -> dict:
    return next(value for key, value in ckpt["callbacks"].items() if key.startswith("StepCheckpoint"))


# (what is changed, what the one line says): every case was a traceback, or a silent resume, before.
CASES = {
    # 120 KB declaring a 10.8 GB image (stride 0), allocated by empty_like
    "image of stride 0": (set_key(images, "image", torch.zeros(1).expand(1, 3, 30000, 30000)),
                          "its state_dict['image'] declares 1x3x30000x30000 (10,800,000,000 bytes) over 4 bytes of data"),
    "int64 image": (set_key(images, "image", torch.zeros(1, 3, 36, 48, dtype=torch.int64)), "its image is int64, not float32"),
    "image of another size": (set_key(images, "image", torch.zeros(1, 3, 40, 40)), "its image is 40x40, not 48x36"),
    "two images for one photo": (set_key(images, "image", torch.zeros(2, 3, 36, 48)), "its image holds 2 images, not 1"),
    "average of another size": (set_key(images, "average.value", torch.zeros(1, 3, 5, 5)), "its average.value is 1x3x5x5, not 1x3x36x48"),
    "VGG19 weight of another shape": (set_key(images, "vgg.features.0.weight", torch.zeros(3)), "['vgg.features.0.weight'] is 3, not 64x3x3x3"),
    "a parameter this model lacks": (set_key(images, "painter", torch.zeros(3)), "its state_dict holds 'painter', which this program's model"),
    "two optimizer states": (lambda c: c["optimizer_states"].append(c["optimizer_states"][0]), "it has 2 optimizer states"),
    "optimizer state of another parameter": (lambda c: c["optimizer_states"][0].__setitem__("state", {1: state(c)}),
                                             "its adam state is for parameters [1], not the image alone"),
    "optimizer without param groups": (set_key(lambda c: c["optimizer_states"][0], "param_groups", "x"), "['param_groups'] is a str, not a list"),
    "a NaN learning rate": (lambda c: c["optimizer_states"][0]["param_groups"][0].__setitem__("lr", float("nan")), "its adam state's lr is nan"),
    "Adam moments of another shape": (set_key(state, "exp_avg", torch.zeros(1, 3, 10, 10)), "its adam state's exp_avg is 1x3x10x10, not 1x3x36x48"),
    "Adam moments missing": (lambda c: state(c).pop("exp_avg_sq"), "its adam state has no exp_avg_sq"),
    "negative second moments": (lambda c: state(c)["exp_avg_sq"].fill_(-1), "exp_avg_sq holds negative or non-finite values"),
    "hyperparameters not a dict": (set_key(top, "hyper_parameters", [1, 2]), "its hyper_parameters is a list, not a dict"),
    "garbage loop state": (set_key(top, "loops", {"fit_loop": 5}), "its loops['fit_loop'] is an int, not a dict"),
    "loop state missing its progress": (lambda c: c["loops"]["fit_loop"].pop("epoch_progress"), "its loops['fit_loop'] has no 'epoch_progress'"),
    "negative loop progress": (lambda c: c["loops"]["fit_loop"]["epoch_progress"]["total"].__setitem__("ready", -3),
                               "['epoch_progress']['total']['ready'] is -3, below 0"),
    "garbage callback states": (set_key(top, "callbacks", [1]), "its callbacks is a list, not a dict"),
    "garbage checkpoint-callback state": (set_key(checkpoint_callback, "best_k_models", {"a.ckpt": "best"}),
                                          "StepCheckpoint callback's best_k_models['a.ckpt'] is a str, not a score"),
    "garbage stage": (set_key(top, "nst_stage", "x"), "its nst_stage is a str, not an int"),
    "a stage past the last": (set_key(top, "nst_stage", 3), "its nst_stage is 3, past the last of the 1 stages"),
    "garbage fingerprint": (set_key(top, "StyleTransferData", 5), "its StyleTransferData is an int, not a dict"),
    "fingerprint without its hashes": (
        lambda c: c["StyleTransferData"]["fingerprint"].pop("content_sha256"), "its fingerprint of the inputs is not one"
    ),
    "garbage Lightning version": (set_key(top, "pytorch-lightning_version", "banana"), "its pytorch-lightning_version 'banana' is no version"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_checkpoint_that_is_not_ours_is_refused_in_one_line_and_nothing_is_written(made, run_cli, tmp_path, capsys, case):
    change, expected = CASES[case]
    bad = crafted(made, tmp_path / "bad.ckpt", change)
    line = user_error(run_cli, capsys, "--ckpt_path", str(bad), "--trainer.max_steps", "6")
    assert f"--ckpt_path: {bad} is not a checkpoint this program can use (" in line
    assert expected in line
    assert nothing_written(tmp_path)


LBFGS_CASES = {
    "a direction of another length": (lambda c: state(c)["old_dirs"].__setitem__(0, torch.zeros(7)), "its lbfgs state's old_dirs[0] is 7, not 5184"),
    "history lists of unequal length": (lambda c: state(c)["ro"].pop(), "its lbfgs state's ro has 2 entries, not 3"),
    "a flat gradient of another length": (set_key(state, "prev_flat_grad", torch.zeros(1, 3, 36, 48)), "prev_flat_grad is 1x3x36x48, not 5184"),
    "a state L-BFGS never writes": (set_key(state, "exp_avg", torch.zeros(1)), "its lbfgs state holds exp_avg, which L-BFGS does not"),
}


@pytest.mark.parametrize("case", list(LBFGS_CASES))
def test_an_lbfgs_state_that_is_not_ours_is_refused(made, run_cli, tmp_path, capsys, case):
    change, expected = LBFGS_CASES[case]
    bad = crafted(made, tmp_path / "bad.ckpt", change, "lbfgs")
    line = user_error(run_cli, capsys, "--ckpt_path", str(bad), "--trainer.max_steps", "6")
    assert expected in line, line
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("case", ["image of stride 0", "Adam moments of another shape", "garbage loop state", "garbage callback states"])
def test_a_bad_last_checkpoint_leaves_its_run_directory_as_it_was(made, run_cli, run_dir, tmp_path, capsys, case):
    run_cli()
    crafted(made, run_dir / "checkpoints" / "last.ckpt", CASES[case][0])
    before = tree(run_dir)
    line = user_error(run_cli, capsys, "--ckpt_path", "last", "--trainer.max_steps", "6")
    assert "lightning_logs/debug/checkpoints/last.ckpt is not a checkpoint this program can use" in line
    assert tree(run_dir) == before  # config.yaml, hparams.yaml and the event file untouched, none added


def test_garbage_hyperparameter_values_are_one_line_and_nothing_is_written(made, run_cli, tmp_path, capsys):
    bad = crafted(made, tmp_path / "bad.ckpt", lambda c: c["hyper_parameters"].__setitem__("lr", "fast"))
    line = user_error(run_cli, capsys, "--ckpt_path", str(bad))
    assert 'Parser key "model.lr"' in line  # LightningCLI's own parse of the checkpoint's options
    assert nothing_written(tmp_path)


# ---- save_weights_only -------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_weights_only_checkpoint_resumes_with_a_warning(run_cli, run_dir, optimizer):
    # Before: every resume of such a checkpoint was Lightning's KeyError traceback.
    args = ["--checkpoint.save_weights_only", "true", "--model.optimizer", optimizer]
    run_cli(*args)
    assert "optimizer_states" not in checkpoint(run_dir / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match="holds no optimizer state .* start afresh"):
        run_cli(*args, "--ckpt_path", "last", "--trainer.max_steps", "6")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 6


def test_a_weights_only_checkpoint_resumes_at_its_coarse_to_fine_stage(run_cli, run_dir):
    # Weights-only checkpoints have no stage either: it is the stage whose size the image has.
    args = ["--checkpoint.save_weights_only", "true", "--model.stage_steps", "[3]", "--trainer.max_steps", "6"]
    run_cli(*args)
    first_stage = run_dir / "checkpoints" / "step000002.ckpt"
    assert tuple(checkpoint(first_stage)["state_dict"]["image"].shape) == (1, 3, 26, 34)
    with pytest.warns(UserWarning, match="holds no optimizer state"):
        run_cli(*args, "--ckpt_path", str(first_stage), "--trainer.logger.init_args.version", "again")
    resumed = checkpoint(run_dir / "again" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 6 and tuple(resumed["state_dict"]["image"].shape) == (1, 3, 36, 48)


# ---- a checkpoint's image as the start of a new run ----------------------------------------------


def _limited_memory() -> None:
    # A run takes under 6 GB of address space here; the 10.8 GB the crafted image declares cannot fit.
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS") or sys.platform != "linux", reason="needs Linux's RLIMIT_AS")
@pytest.mark.parametrize("how", ["init_image", "load_from_checkpoint"])
@pytest.mark.slow
def test_a_checkpoint_declaring_a_huge_image_is_refused_before_anything_is_allocated(made, tmp_path, how):
    # Before: torch.nan_to_num (init_image) and torch.empty_like (load_from_checkpoint) allocated
    # the declared 10.8 GB (here: a MemoryError traceback, under the process's 6 GB of address space).
    bad = crafted(made, tmp_path / "huge.ckpt", CASES["image of stride 0"][0])
    assert bad.stat().st_size < 200_000
    if how == "init_image":
        command = ["-m", "nst_lightning", "fit", "--config", DEBUG_CONFIG, "--model.init", "image", "--model.init_image", str(bad)]
    else:
        command = ["-c", f"from nst_lightning.model.module import StyleTransfer; StyleTransfer.load_from_checkpoint({str(bad)!r})"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=_limited_memory)
    assert "declares 1x3x30000x30000 (10,800,000,000 bytes) over 4 bytes of data" in done.stderr, done.stderr[-2000:]
    if how == "init_image":
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert nothing_written(tmp_path)


def test_an_init_image_that_cannot_fit_in_memory_is_refused_from_its_header(run_cli, tmp_path, capsys, monkeypatch):
    # 4000x4000 (a few kB of PNG) takes ~380 MB to load: refused against 100 MB before it is decoded.
    Image.new("RGB", (4000, 4000), (90, 120, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr("nst_lightning.model.preflight.available_bytes", lambda device: 100e6)
    line = user_error(run_cli, capsys, "--model.init", "image", "--model.init_image", str(tmp_path / "big.png"))
    assert f"--model.init_image: {tmp_path / 'big.png'} is 4000x4000: loading it takes about 0.4 GB but 0.1 GB is available" in line
    assert "--model.check_memory false to try anyway" in line
    assert nothing_written(tmp_path)
