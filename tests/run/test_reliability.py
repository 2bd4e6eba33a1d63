"""Runs that are stopped, resumed with other inputs, diverge or are handed hostile checkpoints.

The interrupted-run tests start the real program as a subprocess and kill it mid-run: they wait for
the first checkpoint (training has started), then send the signal. They never assert on durations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst_lightning.callbacks._checkpoint_io import SafeCheckpointIO
from nst_lightning.inputs.images import load_image
from nst_lightning.model.module import StyleTransfer
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, checkpoint, make_image, user_error

STEPS = 30  # long enough to be killed mid-run: the first checkpoint comes at step 2


def start(tmp_path: Path, *args: str) -> forked.Forked:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return forked.nst_lightning(["fit", "--config", DEBUG_CONFIG, "--trainer.enable_progress_bar", "false", *args],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: forked.Forked, limit_s: float = 120) -> None:
    """Until ``path`` exists (not a timing assertion: a generous limit for a loaded machine)."""
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


# ---- interrupted runs --------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes_at_max_steps(run_cli, run_dir, tmp_path):
    process = start(tmp_path, "--trainer.max_steps", str(STEPS))
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stderr.close()
    killed_at = checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 2 <= killed_at < STEPS
    run_cli("--trainer.max_steps", str(STEPS), "--ckpt_path", "last")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    assert Image.open(run_dir / "generated.png").size == (48, 36)
    # No temporary file of a write the kill may have cut short is left behind.
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".") or "tmp" in p.name]


# SIGHUP (exit 129) is tested as a user meets it, a closed terminal: tests/run/test_hangup.py.
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_signal_saves_checkpoint_and_image_then_resume_finishes(run_cli, run_dir, tmp_path, signum, code):
    process = start(tmp_path, "--trainer.max_steps", str(STEPS))
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code
    assert "Traceback" not in stderr
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    step = saved["global_step"]
    assert 2 <= step < STEPS
    assert last_line(stderr) == (
        f"nst_lightning: stopped by {signum.name} after {step} steps; saved lightning_logs/debug/generated.png "
        f"(the image after {step} steps) and lightning_logs/debug/checkpoints/last.ckpt; continue with --ckpt_path last"
    )
    # The image written is the checkpoint's: the state at the step it stopped after.
    image = load_image(str(run_dir / "generated.png"))
    assert torch.allclose(image, saved["state_dict"]["image"].clamp(0, 1), atol=1 / 255)
    run_cli("--trainer.max_steps", str(STEPS), "--ckpt_path", "last")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == STEPS


def test_a_checkpoint_write_cut_short_leaves_the_old_one_whole(tmp_path):
    io = SafeCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"image": torch.zeros(1, 3, 4, 4)}, "global_step": 1}, path)
    old = path.read_bytes()
    # A tensor that pickles, then an object that does not: torch.save fails after writing part of the file.
    with pytest.raises(Exception):
        io.save_checkpoint({"state_dict": {"image": torch.ones(1, 3, 64, 64)}, "bad": lambda: None}, path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert io.load_checkpoint(path)["global_step"] == 1


# ---- resume safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data.content", "other.png"], "--data.content other.png is not the image"),
        (["--data.style", "builtin:the_scream"], "--data.style ['builtin:the_scream'] is not what"),
        (["--data.style", "[builtin:starry_night,builtin:shipwreck]"], "is not what"),
        (["--data.image_size", "64"], "make the result 64x48 but"),
        (["--data.style_scale", "2"], "made for 48x36 with --data.style_scale 1;"),
    ],
)
def test_resume_with_other_inputs_is_refused_and_leaves_the_run_alone(run_cli, run_dir, tmp_path, capsys, args, message):
    make_image(tmp_path / "other.png", size=(40, 30))
    run_cli()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    line = user_error(run_cli, capsys, "--trainer.max_steps", "8", "--ckpt_path", "last", *args)
    assert message in line
    assert "--model.init image --model.init_image lightning_logs/debug/checkpoints/last.ckpt" in line
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_resume_with_other_blend_weights_is_refused(run_cli, capsys):
    styles = "[builtin:starry_night,builtin:shipwreck]"
    run_cli("--data.style", styles, "--data.style_weights", "[2,1]")
    resume = ["--ckpt_path", "last", "--trainer.max_steps", "6"]
    assert "--data.style_weights differ" in user_error(run_cli, capsys, "--data.style", styles, "--data.style_weights", "[1,1]", *resume)
    # The same blend given as other numbers (4:2 = 2:1) is the same problem: it resumes.
    run_cli("--data.style", styles, "--data.style_weights", "[4,2]", *resume)


def test_a_new_run_can_start_from_a_checkpoints_image(run_cli, run_dir, tmp_path):
    run_cli()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    saved = checkpoint(ckpt)["state_dict"]["image"]
    cli = run_cli(
        "--data.image_size", "64", "--model.init", "image", "--model.init_image", str(ckpt),
        "--trainer.logger.init_args.version", "again", "--trainer.max_steps", "1", "--model.lr", "1e-6",
    )
    assert cli.trainer.global_step == 1  # a new run: step 0 to 1, not the checkpoint's 4
    start = torch.nn.functional.interpolate(saved, size=(48, 64), mode="bicubic", antialias=True).clamp(0, 1)
    assert torch.allclose(cli.model.image.detach(), start, atol=1e-4)


def test_a_resume_does_not_download_again(run_cli, http_server):
    base, root = http_server
    make_image(root / "c.png", size=(40, 30))
    run_cli("--data.content", f"{base}/counted/c.png")
    run_cli("--data.content", f"{base}/counted/c.png", "--ckpt_path", "last", "--trainer.max_steps", "6")
    assert http_server.hits == {"c.png": 1}


# ---- numbers -----------------------------------------------------------------------------------


def test_a_nan_loss_stops_with_a_clear_line_and_keeps_the_last_good_image(run_cli, run_dir, capsys, monkeypatch):
    forward = StyleTransfer.forward

    def nan_at_step_5(self, image=None):
        losses = forward(self, image)
        if self.trainer.global_step == 5:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(StyleTransfer, "forward", nan_at_step_5)
    line = user_error(run_cli, capsys, "--trainer.max_steps", "10")
    assert line.startswith("nst_lightning: error: the loss became nan after 5 steps: the optimisation diverged")
    assert "a lower --model.lr (it is 0.02)" in line
    assert "the last image with a finite loss (after 4 steps) is in lightning_logs/debug/generated.png" in line
    assert "--model.init image --model.init_image lightning_logs/debug/generated.png" in line
    # The last checkpoint (step 4) is kept, and the image written is its image, the last with a finite loss.
    last = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert not (run_dir / "checkpoints" / "step000006.ckpt").exists()
    assert torch.allclose(load_image(str(run_dir / "generated.png")), last["state_dict"]["image"], atol=1 / 255)


@pytest.mark.slow
def test_lbfgs_with_an_absurd_step_size_diverges_cleanly(tmp_path, run_dir):
    process = start(tmp_path, "--model.optimizer", "lbfgs", "--model.lr", "1e30", "--trainer.max_steps", "20")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "Traceback" not in stderr
    line = last_line(stderr)
    assert "the optimisation diverged" in line and "--model.lr (it is 1e+30) or --model.optimizer adam" in line
    image = load_image(str(run_dir / "generated.png"))
    assert image.shape == (1, 3, 36, 48) and torch.isfinite(image).all()
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        assert torch.isfinite(checkpoint(path)["state_dict"]["image"]).all()


@pytest.mark.parametrize(
    "args, key",
    [
        (["--model.content_weight", "inf"], "model.content_weight"),
        (["--model.style_weight", "nan"], "model.style_weight"),
        (["--model.tv_weight", "1e400"], "model.tv_weight"),
        (["--model.lr", "inf"], "model.lr"),
        (["--model.lr", "0"], "model.lr"),
        (["--model.style_layer_weights", "[1,1,1,1,-1]"], "model.style_layer_weights"),
        (["--data.style_scale", "inf"], "data.style_scale"),
        (["--data.style", "[builtin:starry_night,builtin:shipwreck]", "--data.style_weights", "[1,-2]"], "data.style_weights"),
        (["--model.lbfgs_history", "0"], "model.lbfgs_history"),
        (["--checkpoint.every_n_train_steps", "-1"], "checkpoint.every_n_train_steps"),
        (["--checkpoint.save_top_k", "-2"], "--checkpoint.save_top_k must be an integer >= -1"),
        (["--trainer.log_every_n_steps", "0"], "--trainer.log_every_n_steps must be"),
        (["--image_logger.every_n_steps", "0"], "image_logger.every_n_steps"),
    ],
)
def test_numeric_options_are_checked_when_parsed(run_cli, tmp_path, capsys, args, key):
    assert key in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


def test_all_loss_weights_zero_is_refused(run_cli, capsys):
    assert "nothing to optimise" in user_error(run_cli, capsys, "--model.content_weight", "0", "--model.style_weight", "0")


# ---- checkpoints are data: loading one never runs code from it ----------------------------------


class Payload:
    """Unpickling this calls os.system: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    with open(path, "wb") as handle:
        torch.save({"state_dict": {"image": torch.zeros(1, 3, 36, 48)}, "evil": Payload(marker)}, handle, pickle_protocol=2)
    return path


@pytest.mark.parametrize("how", ["resume", "init_image"])
def test_a_checkpoint_that_would_run_code_is_refused_unopened(run_cli, tmp_path, capsys, how):
    marker = tmp_path / "pwned"
    ckpt = hostile_checkpoint(tmp_path / "evil.ckpt", marker)
    args = ["--ckpt_path", str(ckpt)] if how == "resume" else ["--model.init", "image", "--model.init_image", str(ckpt)]
    assert "contains Python objects that loading would have to execute" in user_error(run_cli, capsys, *args)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["resume", "init_image"])
def test_a_truncated_checkpoint_is_refused_clearly(run_cli, run_dir, tmp_path, capsys, how):
    run_cli()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    args = ["--ckpt_path", str(cut)] if how == "resume" else [
        "--model.init", "image", "--model.init_image", str(cut), "--trainer.logger.init_args.version", "new"]
    assert "is damaged, truncated or not a checkpoint" in user_error(run_cli, capsys, *args)
