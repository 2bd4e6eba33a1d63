"""The style weight over the run (``--model.style_weight_start``, ``callbacks/style_weight.py``): the
factor, and through the real CLI (configs/debug.yaml) the weight each step's loss used, untiled and
tiled, and a resume equal to the run straight through."""

from __future__ import annotations

import shutil

import pytest

from nst_lightning.callbacks.style_weight import ramp_factor
from tests.helpers import checkpoint, events, pixels_sha, user_error

RAMP = ("--model.style_weight_start", "2", "--model.style_weight_ramp", "0.5")


def test_the_factor_moves_in_a_line_from_its_start_to_one_then_stays():
    assert [ramp_factor(step, 8, 2.0, 0.5) for step in range(9)] == [2.0, 1.75, 1.5, 1.25, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert [ramp_factor(step, 4, 0.0, 1.0) for step in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert ramp_factor(0, 3, 0.5, 0.1) == 0.5 and ramp_factor(1, 3, 0.5, 0.1) == 1.0  # a ramp of at least one step


@pytest.mark.parametrize("tiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["untiled", "tiled"])
def test_each_steps_loss_weighs_the_style_loss_by_the_ramp(run_cli, run_dir, tiled):
    # The logged total is content + weight * style (tv_weight 0): the weight each step used, read back.
    tiles = ("--model.tile_size", "32") if tiled else ()  # 4 tiles of the 48x36 image
    cli = run_cli(*RAMP, "--trainer.max_steps", "4", *tiles)
    assert cli.model.automatic_optimization is not tiled
    scalars = {tag: [event.value for event in events(run_dir).Scalars(f"train/{tag}")] for tag in ("loss", "content_loss", "style_loss")}
    used = [(total - content) / style for total, content, style in zip(*scalars.values())]
    assert used == pytest.approx([20.0, 15.0, 10.0, 10.0], rel=1e-4)


def test_a_resumed_run_with_a_ramp_is_bit_identical_to_one_straight_through(run_cli, run_dir):
    # The weight is a function of the step: a run resumed mid-ramp takes the weights the straight run took.
    run_cli(*RAMP, "--trainer.max_steps", "6")
    straight = pixels_sha(run_dir / "generated.png")
    checkpoints = run_dir / "checkpoints"
    shutil.copyfile(checkpoints / "step000002.ckpt", checkpoints / "last.ckpt")
    for later in [p for p in checkpoints.glob("step*.ckpt") if p.name != "step000002.ckpt"] + [run_dir / "generated.png"]:
        later.unlink()
    assert checkpoint(checkpoints / "last.ckpt")["global_step"] == 2
    run_cli(*RAMP, "--trainer.max_steps", "6", "--ckpt_path", "last")
    assert pixels_sha(run_dir / "generated.png") == straight


def test_a_different_ramp_on_resume_is_refused_naming_it(run_cli, run_dir, capsys):
    run_cli(*RAMP, "--trainer.max_steps", "2")
    line = user_error(run_cli, capsys, "--model.style_weight_start", "1.5", "--trainer.max_steps", "4", "--ckpt_path", "last")
    assert "style_weight_start" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.style_weight_start", "-1"], 'Parser key "model.style_weight_start"'),
        (["--model.style_weight_start", "inf"], 'Parser key "model.style_weight_start"'),
        (["--model.style_weight_ramp", "0"], 'Parser key "model.style_weight_ramp"'),
        (["--model.style_weight_ramp", "1.5"], 'Parser key "model.style_weight_ramp"'),
    ],
)
def test_bad_ramps_are_refused_as_the_command_line_is_read(parse_refusal, args, message):
    assert message in parse_refusal(*args)
