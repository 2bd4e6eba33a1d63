"""Learning-rate schedules (model/schedules.py): the factor, the options' checks, and through the real
CLI (configs/debug.yaml) the step sizes used, untiled and tiled, and resumes equal to runs straight
through."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from nst_lightning import StyleTransfer, UserError
from nst_lightning.model.schedules import StepSizeFactor
from tests.helpers import checkpoint, info_lines, pixels_sha, user_error

COSINE = ("--model.lr_schedule", "cosine", "--model.warmup_steps", "2", "--model.lr_floor", "0.1")


def test_the_factor_warms_up_then_decays_to_the_floor_at_the_runs_end():
    cosine = StepSizeFactor("cosine", 0.1, 2, 10)
    assert [cosine(k) for k in range(3)] == [1 / 3, 2 / 3, 1.0]  # warm-up from ~0, then lr
    decay = [cosine(k) for k in range(2, 11)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(0.1) and cosine(50) == pytest.approx(0.1)  # the floor at max_steps, and after
    assert cosine(6) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: the cosine's middle
    linear = StepSizeFactor("linear", 0.0, 0, 4)
    assert [linear(k) for k in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [StepSizeFactor("constant", 0.0, 3, 10)(k) for k in (0, 2, 3, 9)] == [0.25, 0.75, 1.0, 1.0]


def test_with_lr_decay_fraction_the_step_stays_at_lr_until_the_decay_takes_the_runs_end():
    # Warm-up 2, stable, a linear decay over the last 0.4 x 10 = 4 steps to 0.2: by hand, steps 6..9
    # take 0.2 + 0.8 (1 - p) with p = (k - 6) / 4, i.e. 1.0, 0.8, 0.6, 0.4, and 0.2 at max_steps.
    wsd = StepSizeFactor("linear", 0.2, 2, 10, decay_fraction=0.4)
    assert [wsd(k) for k in range(11)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1, 1.0, 0.8, 0.6, 0.4, 0.2])
    cosine = StepSizeFactor("cosine", 0.0, 0, 10, decay_fraction=0.4)
    assert cosine(8) == pytest.approx(0.5) and cosine(5) == 1.0  # the cosine's middle, half way through the tail
    # configs/quick.yaml's 0.33 of 120 steps is the last 40 (from step 80); of a 24-step video frame, the last 8.
    quick = StepSizeFactor("linear", 0.1, 0, 120, decay_fraction=0.33)
    assert quick(80) == 1.0 and quick(81) == pytest.approx(0.1 + 0.9 * 39 / 40)
    frame = StepSizeFactor("linear", 0.1, 0, 24, decay_fraction=0.33)
    assert frame(16) == 1.0 and frame(17) == pytest.approx(0.1 + 0.9 * 7 / 8)
    # Never into the warm-up: a tail longer than what follows it starts where the warm-up ends.
    assert [StepSizeFactor("linear", 0.0, 3, 4, decay_fraction=0.9)(k) for k in range(5)] == [0.25, 0.5, 0.75, 1.0, 0.0]
    # A scheduler state saved before lr_decay_fraction existed has no such field: the factor keeps 1.0.
    old = StepSizeFactor("cosine", 0.1, 2, 10)
    assert old.decay_fraction == 1.0


def test_the_factor_is_an_object_whose_state_loads_with_weights_only(tmp_path):
    factor = StepSizeFactor("cosine", 0.1, 2, 10)
    assert pickle.loads(pickle.dumps(factor))(5) == factor(5)
    image = torch.zeros(1, 3, 4, 4, requires_grad=True)
    configured = StyleTransfer(weights="random", lr_schedule="cosine", warmup_steps=2).optim.configure_optimizers(image, 10)
    scheduler = configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    assert torch.load(tmp_path / "s.pt", weights_only=True)["lr_lambdas"] == [vars(StepSizeFactor("cosine", 0.0, 2, 10))]


@pytest.mark.parametrize(
    "options",
    [dict(optimizer="lbfgs", lr_schedule="cosine"), dict(optimizer="lbfgs", warmup_steps=5), dict(lr_floor=0.1, lr_decay_fraction=0.5)],
    ids=["lbfgs-cosine", "lbfgs-warm-up", "constant-with-floor-and-decay"],
)
def test_a_schedule_that_cannot_apply_is_not_used_so_configs_layer(options):
    # configs/quick.yaml has a schedule: --model.optimizer lbfgs or --model.lr_schedule constant over it
    # must run, with L-BFGS's own step sizes, or Adam's constant lr, as without one.
    optim = StyleTransfer(weights="random", **options).optim
    assert not optim.scheduled
    assert not isinstance(optim.configure_optimizers(torch.zeros(1, 3, 4, 4, requires_grad=True), 10), dict)
    assert (optim.unused_schedule is not None) == (optim.optimizer == "lbfgs")


def test_lbfgs_over_a_config_with_a_schedule_runs_and_says_the_schedule_is_not_used(run_cli):
    with info_lines() as lines:
        cli = run_cli("--model.optimizer", "lbfgs", "--model.lr_schedule", "linear", "--model.lr_floor", "0.1",
                      "--model.lr_decay_fraction", "0.5", "--trainer.max_steps", "3")
    assert isinstance(cli.trainer.optimizers[0], torch.optim.LBFGS) and not cli.trainer.lr_scheduler_configs
    assert cli.trainer.global_step == 3
    assert ("L-BFGS sizes each step from its curvature estimate: lr_schedule linear and warmup_steps 0 are not used"
            in lines)


def test_without_a_schedule_the_optimizer_is_returned_alone_as_before():
    image = torch.zeros(1, 3, 4, 4, requires_grad=True)
    optimizer = StyleTransfer(weights="random").optim.configure_optimizers(image, 10)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.02


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(lr_schedule="linear", lr_floor=2.0), "give at most 1"),
    ],
)
def test_schedule_options_are_checked_in_their_group(options, message):
    with pytest.raises(UserError) as err:
        StyleTransfer(weights="random", **options)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.warmup_steps", "4"], "--model.warmup_steps 4 does not fit in --trainer.max_steps 4"),
        (["--model.lr_decay_fraction", "0"], 'Parser key "model.lr_decay_fraction"'),
    ],
)
def test_bad_schedules_are_one_line_exit_2_and_nothing_written(run_cli, tmp_path, capsys, args, message):
    assert message in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.lr_decay_fraction", "1.5"], 'Parser key "model.lr_decay_fraction"'),
        (["--model.lr_schedule", "step"], 'Parser key "model.lr_schedule"'),
        (["--model.warmup_steps", "-1"], 'Parser key "model.warmup_steps"'),
        (["--model.lr_floor", "nan"], 'Parser key "model.lr_floor"'),
        (["--model.sync_every", "0"], 'Parser key "model.sync_every"'),
    ],
)
def test_bad_schedules_are_refused_as_the_command_line_is_read(parse_refusal, args, message):
    assert message in parse_refusal(*args)


@pytest.mark.parametrize("tiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["untiled", "tiled"])
def test_each_step_takes_the_scheduled_step_size(run_cli, run_dir, tiled):
    # Tiled, the step runs under manual optimization, where Lightning steps no scheduler: the tiled
    # step does. Either way the checkpoint after step k holds the step size of step k.
    tiles = ("--model.tile_size", "32") if tiled else ()  # 4 tiles of the 48x36 image
    cli = run_cli(*COSINE, "--trainer.max_steps", "6", *tiles)
    assert cli.model.automatic_optimization is not tiled
    factor = StepSizeFactor("cosine", 0.1, 2, 6)
    for step in (2, 4, 6):  # (the decay tail: test_a_resumed_run_with_a_decay_tail_keeps_its_steps)
        saved = checkpoint(run_dir / "checkpoints" / f"step{step:06d}.ckpt")
        assert saved["lr_schedulers"][0]["last_epoch"] == step
        assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.02 * factor(step))


@pytest.mark.parametrize(
    "options",
    [
        ("--trainer.max_steps", "4"),
        pytest.param(("--trainer.max_steps", "4", "--model.tile_size", "32", "--data.image_size", "64"), marks=pytest.mark.slow),
        ("--trainer.max_steps", "6", "--model.stage_steps", "[3]", "--model.ema_decay", "0.9"),
    ],
    ids=["untiled", "tiled", "coarse-to-fine"],
)
def test_a_resumed_scheduled_run_is_bit_identical_to_one_straight_through(run_cli, run_dir, options):
    run_cli(*COSINE, *options)
    straight = pixels_sha(run_dir / "generated.png")
    # As a run killed after its step-2 checkpoint leaves it (tests/run/test_reliability.py kills real
    # processes): last.ckpt is that of step 2, nothing later. Then resumed with --ckpt_path last.
    checkpoints = run_dir / "checkpoints"
    shutil.copyfile(checkpoints / "step000002.ckpt", checkpoints / "last.ckpt")
    for later in [p for p in checkpoints.glob("step*.ckpt") if p.name != "step000002.ckpt"] + [run_dir / "generated.png"]:
        later.unlink()
    assert checkpoint(checkpoints / "last.ckpt")["lr_schedulers"][0]["last_epoch"] == 2
    run_cli(*COSINE, *options, "--ckpt_path", "last")
    assert pixels_sha(run_dir / "generated.png") == straight


def test_a_resumed_run_with_a_decay_tail_is_bit_identical_and_keeps_its_step_sizes(run_cli, run_dir):
    tail = ("--model.lr_schedule", "linear", "--model.lr_floor", "0.1", "--model.lr_decay_fraction", "0.5", "--trainer.max_steps", "6")
    run_cli(*tail)
    straight = pixels_sha(run_dir / "generated.png")
    factor = StepSizeFactor("linear", 0.1, 0, 6, decay_fraction=0.5)
    for step in (2, 4, 6):  # 1.0 until step 3, then 0.7, 0.4 and the floor
        saved = checkpoint(run_dir / "checkpoints" / f"step{step:06d}.ckpt")
        assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.02 * factor(step))
    checkpoints = run_dir / "checkpoints"
    shutil.copyfile(checkpoints / "step000002.ckpt", checkpoints / "last.ckpt")
    for later in [p for p in checkpoints.glob("step*.ckpt") if p.name != "step000002.ckpt"] + [run_dir / "generated.png"]:
        later.unlink()
    run_cli(*tail, "--ckpt_path", "last")
    assert pixels_sha(run_dir / "generated.png") == straight


def test_a_resume_that_extends_the_run_stretches_the_rest_of_the_schedule(run_cli, run_dir):
    run_cli(*COSINE, "--trainer.max_steps", "4")
    run_cli(*COSINE, "--trainer.max_steps", "8", "--ckpt_path", "last")
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["lr_schedulers"][0]["lr_lambdas"][0]["total_steps"] == 8
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.02 * StepSizeFactor("cosine", 0.1, 2, 8)(8))


def test_a_checkpoint_made_before_schedules_resumes_and_refuses_to_start_one(run_cli, run_dir, capsys):
    run_cli("--trainer.max_steps", "6")
    straight = pixels_sha(run_dir / "generated.png")
    # A checkpoint of the format before schedules: no schedule options in its hyperparameters (and,
    # as every checkpoint without a scheduler, an empty list of scheduler states).
    checkpoints = run_dir / "checkpoints"
    state = checkpoint(checkpoints / "step000002.ckpt")
    for name in ("lr_schedule", "lr_floor", "warmup_steps", "sync_every"):
        del state["hyper_parameters"][name]
    assert state["lr_schedulers"] == []
    for path in checkpoints.glob("*.ckpt"):
        path.unlink()
    torch.save(state, checkpoints / "last.ckpt")
    (run_dir / "generated.png").unlink()
    before = (checkpoints / "last.ckpt").read_bytes()
    line = user_error(run_cli, capsys, "--trainer.max_steps", "6", "--ckpt_path", "last", "--model.lr_schedule", "cosine")
    assert "was made without a learning-rate schedule" in line and "--model.lr_schedule constant" in line
    assert (checkpoints / "last.ckpt").read_bytes() == before
    run_cli("--trainer.max_steps", "6", "--ckpt_path", "last")
    assert pixels_sha(run_dir / "generated.png") == straight


def test_a_nan_during_warm_up_names_the_options_step_size_not_the_scheduled_one(run_cli, capsys, monkeypatch):
    forward = StyleTransfer.forward

    def nan_at_step_1(self, image=None):
        losses = forward(self, image)
        if self.trainer.global_step == 1:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(StyleTransfer, "forward", nan_at_step_1)
    line = user_error(run_cli, capsys, *COSINE)
    assert "the loss became nan after 1 step:" in line
    assert "a lower --model.lr (it is 0.02)" in line  # the step size of the moment was 0.02 * 2/3


def test_a_weights_only_checkpoint_of_a_scheduled_run_goes_on_from_its_place_in_the_schedule(run_cli, run_dir):
    # Such a checkpoint holds no scheduler state: the schedule is moved on to its step, not restarted.
    args = [*COSINE, "--checkpoint.save_weights_only", "true"]
    run_cli(*args, "--trainer.max_steps", "4")
    assert "lr_schedulers" not in checkpoint(run_dir / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match="holds no optimizer state"):
        cli = run_cli(*args, "--trainer.max_steps", "6", "--ckpt_path", "last")
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == 6
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.02 * StepSizeFactor("cosine", 0.1, 2, 6)(6))


def test_a_garbage_scheduler_state_is_one_line_and_nothing_written(run_cli, run_dir, capsys):
    run_cli(*COSINE, "--trainer.max_steps", "4")
    path = run_dir / "checkpoints" / "last.ckpt"
    state = checkpoint(path)
    state["lr_schedulers"][0]["last_epoch"] = "four"
    torch.save(state, path)
    before = sorted(p.name for p in run_dir.rglob("*"))
    line = user_error(run_cli, capsys, *COSINE, "--trainer.max_steps", "6", "--ckpt_path", "last")
    assert "lr_schedulers" in line and "last_epoch" in line, line
    assert sorted(p.name for p in run_dir.rglob("*")) == before
