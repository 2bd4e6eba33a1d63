"""The real path: CLI -> Trainer -> module -> files on disk, on tiny images with untrained weights."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from nst_lightning import StyleTransfer
from nst_lightning.__main__ import dispatch
from nst_lightning.inputs.images import load_image
from tests import _forked as forked
from tests.helpers import CONFIGS, REPO, checkpoint, events, make_image, scalar_steps, user_error

STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def test_fit_writes_image_checkpoints_and_tensorboard(run_cli, run_dir, capsys):
    cli = run_cli()
    # The result, printed at the end, with the content image's aspect (built-in Tuebingen, 4:3).
    assert f"generated image: {Path('lightning_logs/debug/generated.png')}" in capsys.readouterr().out
    assert Image.open(run_dir / "generated.png").size == (48, 36)
    # Checkpoints: last plus the periodic ones, holding the image and Adam's state but no VGG weights.
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step000002.ckpt", "step000004.ckpt"]
    last = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert list(last["state_dict"]) == ["image"]
    assert last["optimizer_states"][0]["state"][0]["step"].item() == 4
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_size < 100_000  # VGG alone is 50 MB
    # TensorBoard: every scalar at every step (log_every_n_steps=1 in debug.yaml) and the images.
    accumulator = events(run_dir)
    tags = set(accumulator.Tags()["scalars"])
    expected = {"train/loss", "train/content_loss", "train/style_loss", "train/tv_loss"}
    expected |= {f"train/style_loss/{name}" for name in STYLE_LAYERS}
    assert expected <= tags
    assert scalar_steps(run_dir) == [0, 1, 2, 3]
    assert {"input/content", "input/style", "generated"} <= set(accumulator.Tags()["images"])
    assert [image.step for image in accumulator.Images("generated")] == [0, 2, 4]
    assert yaml.safe_load((run_dir / "hparams.yaml").read_text())["style_weight"] == 10.0
    # The loss falls: the image is being optimised.
    losses = [event.value for event in accumulator.Scalars("train/loss")]
    assert losses[-1] < losses[0]
    # The module's only trainable parameter is the image, [1, 3, H, W]; the optimizer holds it alone.
    model = cli.model
    assert [p for p in model.parameters() if p.requires_grad] == [model.image]
    assert model.image.shape == (1, 3, 36, 48)
    assert cli.trainer.optimizers[0].param_groups[0]["params"] == [model.image]


def test_gradients_reach_only_the_image(run_cli):
    model = run_cli("--trainer.max_steps", "1").model
    model.image.grad = None
    model()["loss"].backward()
    assert model.image.grad is not None and model.image.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.vgg.parameters())


def test_resume_continues_from_the_saved_step_with_optimizer_state(run_cli, run_dir, tmp_path):
    run_cli("--trainer.max_steps", "4")
    run_cli("--trainer.max_steps", "7", "--ckpt_path", "last")
    last = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 7
    assert last["optimizer_states"][0]["state"][0]["step"].item() == 7  # Adam's moments carried over
    # 4 steps, then exactly 3 more: no step logged twice, none skipped.
    assert scalar_steps(run_dir) == list(range(7))
    # And the same image as one uninterrupted run of 7 steps.
    run_cli("--trainer.max_steps", "7", "--trainer.logger.init_args.version", "straight")
    resumed = load_image(str(run_dir / "generated.png"))
    straight = load_image(str(run_dir / "straight" / "generated.png"))
    assert torch.allclose(resumed, straight, atol=1 / 255)


def test_resume_from_an_explicit_checkpoint_path(run_cli, run_dir):
    run_cli("--trainer.max_steps", "4")
    run_cli("--trainer.max_steps", "5", "--ckpt_path", str(run_dir / "checkpoints" / "step000002.ckpt"))
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 5


def test_a_second_fresh_run_does_not_overwrite_the_first(run_cli, run_dir, capsys):
    run_cli()
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_cli()
    assert exit_info.value.code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before


def test_runs_are_reproducible_from_the_seed_with_noise_init(run_cli, run_dir):
    run_cli("--model.init", "noise")
    run_cli("--model.init", "noise", "--trainer.logger.init_args.version", "again")
    first, second = load_image(str(run_dir / "generated.png")), load_image(str(run_dir / "again/generated.png"))
    assert torch.equal(first, second)
    run_cli("--model.init", "noise", "--seed_everything", "1", "--trainer.logger.init_args.version", "seed1")
    assert not torch.equal(first, load_image(str(run_dir / "seed1/generated.png")))


def test_detailed_scalars_are_logged_on_the_steps_the_logger_writes(run_cli, run_dir):
    # Logged only where the Trainer writes them (a per-step saving); the same steps as train/loss.
    run_cli("--trainer.max_steps", "7", "--trainer.log_every_n_steps", "3")
    assert scalar_steps(run_dir) == [2, 5]
    for tag in ("train/content_loss", "train/style_loss", "train/style_loss/conv3_1", "train/tv_loss"):
        assert scalar_steps(run_dir, tag) == [2, 5]


@pytest.mark.parametrize("memory_format, nhwc", [("auto", True), ("contiguous", False), ("channels_last", True)])
def test_memory_format_auto_is_channels_last_on_cpu(run_cli, memory_format, nhwc):
    model = run_cli("--trainer.max_steps", "1", "--model.memory_format", memory_format).model
    assert model.vgg.channels_last is nhwc
    assert model.image.is_contiguous()  # the parameter stays NCHW for L-BFGS's flat views


def test_bf16_mixed_on_cpu_gives_finite_losses(run_cli, run_dir):
    cli = run_cli("--trainer.precision", "bf16-mixed")
    assert cli.trainer.precision == "bf16-mixed"
    values = [event.value for event in events(run_dir).Scalars("train/style_loss")]
    assert len(values) == 4 and all(math.isfinite(v) for v in values)
    assert (run_dir / "generated.png").exists()


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_lbfgs_runs_resumes_and_lowers_the_loss(run_cli, run_dir, precision):
    args = ("--model.optimizer", "lbfgs", "--trainer.precision", precision)
    run_cli(*args, "--trainer.max_steps", "4")
    state = checkpoint(run_dir / "checkpoints" / "last.ckpt")["optimizer_states"][0]["state"][0]
    assert {"old_dirs", "old_stps", "prev_flat_grad"} <= set(state)  # L-BFGS history is saved
    run_cli(*args, "--trainer.max_steps", "6", "--ckpt_path", "last")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 6
    losses = [event.value for event in events(run_dir).Scalars("train/loss")]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_lbfgs_with_fp16_is_refused_clearly(run_cli, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--model.optimizer", "lbfgs", "--trainer.precision", "16-mixed")
    assert exit_info.value.code == 2
    assert "lbfgs cannot run with --trainer.precision 16-mixed" in capsys.readouterr().err
    assert not (tmp_path / "lightning_logs").exists()


def test_images_from_urls(run_cli, run_dir, http_server):
    base, root = http_server
    make_image(root / "content.png", size=(60, 40))
    make_image(root / "style.jpg", size=(50, 50), color=(10, 200, 90))
    run_cli("--data.content", f"{base}/content.png", "--data.style", f"{base}/style.jpg")
    assert Image.open(run_dir / "generated.png").size == (48, 32)


def test_load_from_checkpoint_gives_back_the_image(run_cli, run_dir):
    run_cli()
    model = StyleTransfer.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    saved = load_image(str(run_dir / "generated.png"))
    assert torch.allclose(model.image.detach().clamp(0, 1), saved, atol=1 / 255)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data.content", "missing.jpg"], "--data.content: file not found: missing.jpg"),
        (["--data.style", "notes.txt"], "--data.style: notes.txt is not a readable image"),
        (["--data.style", "http://127.0.0.1:9/style.jpg"], "--data.style: could not download"),
        # One refusal of jsonargparse's through the whole CLI; the others: test_options_refused_as_the_command_line_is_read.
        (["--model.style_layers", "[conv1_1,conv9_9]"], 'Parser key "model.style_layers"'),
        (["--model.content_layers", "[conv4_2]", "--model.style_layer_weights", "[1,2]"], "one weight per layer"),
        (["--model.weights", "nowhere.pth"], "--model.weights: no such file"),
        (["--data.image_size", "8"], "below VGG19's minimum"),
        (["--data.image_size", "60000"], "result needs about"),  # refused before it is decoded
        (["--model.tile_size", "8"], "--model.tile_size 8 is below the smallest tile these layers allow, 16 px"),
        (["--model.tile_size", "256", "--model.max_memory_gb", "4"], "are both set; give one"),
        (["--model.max_memory_gb", "0.2"], "--model.max_memory_gb 0.2 is too small for a 48x36 result"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(run_cli, tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("not an image")
    assert message in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data.image_size", "0"], 'Parser key "data.image_size"'),
        (["--data.image_size", "-5"], 'Parser key "data.image_size"'),
        (["--model.style_weight", "-1"], 'Parser key "model.style_weight"'),
        (["--model.tv_weight", "-0.1"], 'Parser key "model.tv_weight"'),
        (["--model.optimizer", "sgd"], 'Parser key "model.optimizer"'),
        (["--model.style_loss", "l2"], 'Parser key "model.style_loss"'),
    ],
)
def test_options_refused_as_the_command_line_is_read(parse_refusal, tmp_path, args, message):
    # The same line the CLI prints (tests/conftest.py's parse_refusal; the CLI's own: the test above).
    assert message in parse_refusal(*args)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    args = ["fit", "--config", str(CONFIGS / "debug.yaml"), "--data.content", "gone.png"]
    result = subprocess.run([sys.executable, "-m", "nst_lightning", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "nst_lightning: error: --data.content: file not found: gone.png; give an existing image file or an http(s) URL"
    )
    assert list(tmp_path.iterdir()) == []
    # The tests' forked start (tests/_forked.py) says and exits as the real one does.
    forked_result = forked.run(args, cwd=tmp_path, timeout=120)
    assert (forked_result.returncode, forked_result.stdout, forked_result.stderr) == (result.returncode, result.stdout, result.stderr)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses(run_cli, capsys, config):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--print_config", config=str(config))
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_steps"] > 0
    assert printed["data"]["image_size"] > 0
    assert printed["model"]["optimizer"] in ("adam", "lbfgs")
    first_line = config.read_text().splitlines()[0]
    assert first_line.startswith("# ") and len(first_line) > 20  # each config says why it exists


@pytest.mark.parametrize("how", ["last", "path"])
def test_resume_with_changed_model_options_is_refused_naming_each(run_cli, run_dir, capsys, how):
    run_cli()
    ckpt = "last" if how == "last" else str(run_dir / "checkpoints" / "last.ckpt")
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    line = user_error(
        run_cli, capsys, "--ckpt_path", ckpt, "--trainer.max_steps", "6", "--model.style_weight", "20", "--model.lr", "0.1"
    )
    assert "was made with other model options" in line
    assert "--model.lr is 0.1 here but the checkpoint was made with null; the resumed run keeps null" in line
    assert "--model.style_weight is 20.0 here but the checkpoint was made with 10.0" in line
    assert "--model.init image --model.init_image" in line
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before
    run_cli("--ckpt_path", ckpt, "--trainer.max_steps", "6")  # the same options resume


def test_every_blended_style_is_shown_in_tensorboard(run_cli, run_dir):
    run_cli("--trainer.max_steps", "1", "--data.style", "[builtin:starry_night,builtin:the_scream]")
    assert {"input/style/1", "input/style/2"} <= set(events(run_dir).Tags()["images"])


def test_tensorboard_images_are_previews_no_larger_than_max_side(run_cli, run_dir):
    run_cli("--trainer.max_steps", "2", "--image_logger.max_side", "24")
    accumulator = events(run_dir)
    for tag in ("generated", "input/content", "input/style"):
        image = accumulator.Images(tag)[-1]
        assert max(image.width, image.height) == 24, tag
    assert Image.open(run_dir / "generated.png").size == (48, 36)  # the result itself is full size


@pytest.mark.slow
def test_installed_command_runs_the_cli():
    command = shutil.which("nst-lightning")
    if command is None:
        pytest.skip("nst-lightning is not on PATH (install the package with pip install -e .)")
    result = subprocess.run([command, "fit", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "usage: nst-lightning" in result.stdout and "--model.style_loss" in result.stdout


@pytest.mark.slow
def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "nst_lightning", "fit", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "--model.style_weight" in result.stdout and "--data.content" in result.stdout
    assert "usage: python -m nst_lightning" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
def test_the_programs_help_lists_its_four_commands(args):
    result = subprocess.run([sys.executable, "-m", "nst_lightning", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    commands = [line.split()[0] for line in result.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()]
    assert commands == ["fit", "batch", "video", "ui"]
    for hidden in ("validate", "predict"):
        assert hidden not in result.stdout


@pytest.mark.parametrize("command", ["predict", "validate", "test"])
def test_lightnings_other_subcommands_are_one_line_errors(tmp_path, command):
    result = subprocess.run([sys.executable, "-m", "nst_lightning", command, "--config", str(CONFIGS / "debug.yaml")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"nst_lightning: error: {command!r} is not a command; the commands are fit, batch, video, ui (see python -m nst_lightning --help)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_fit_cli_has_no_other_subcommand(run_cli, capsys, tmp_path):
    # In-process (batch, video and the page call cli_main): LightningCLI itself knows fit alone.
    from nst_lightning.run.entry import cli_main

    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", "--config", str(CONFIGS / "debug.yaml")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'predict' (choose from 'fit')" in capsys.readouterr().err
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("command, groups", [
    ("batch", ["what to style", "how the jobs run"]),
    ("video", ["what to style", "how the shots run", "holding frames together", "optical flow", "the clip written"]),
    ("ui", ["the page", "limits that keep the machine serving everyone"]),
])
def test_each_commands_help_groups_its_options(command, groups, capsys):
    # The dispatch that `python -m nst_lightning` runs, in this process: a process of its own would import
    # torch and Lightning anew for each command (~4.5 CPU s); test_module_entry_point_help starts one.
    with pytest.raises(SystemExit) as exit:
        dispatch([command, "--help"])
    assert exit.value.code == 0
    headings = [line[:-1] for line in capsys.readouterr().out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["options", *groups]


def test_step_checkpoint_still_finds_the_model_checkpoint_methods_it_calls():
    # StepCheckpoint saves "now" (at the end, on a signal) through ModelCheckpoint's protected methods:
    # Lightning has no public way. If an upgrade renames them, this says so before any run fails.
    from lightning.pytorch.callbacks import ModelCheckpoint

    for name in ("_should_skip_saving_checkpoint", "_monitor_candidates", "_save_topk_checkpoint", "_save_last_checkpoint"):
        assert callable(getattr(ModelCheckpoint, name, None)), f"ModelCheckpoint.{name} is gone: see StepCheckpoint._save_now"


def _fit_output(cwd, *args: str) -> list[str]:
    """The lines a real ``fit`` of configs/debug.yaml prints (stdout and stderr, a progress bar's
    redraws each a line of its own)."""
    result = subprocess.run(
        [sys.executable, "-m", "nst_lightning", "fit", "--config", str(CONFIGS / "debug.yaml"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in (result.stdout + result.stderr).replace("\r", "\n").splitlines() if line.strip()]


@pytest.mark.slow
def test_a_run_prints_its_progress_and_its_own_lines_only(tmp_path):
    # No advertisement ("Tip: ... litlogger/litmodels"), no expected-but-wrong warnings, none of
    # Lightning's lines about itself (accelerators available, seed, fit stopped), no model summary: the
    # progress bar in steps, and this program's lines.
    lines = _fit_output(tmp_path, "--trainer.precision", "bf16-mixed")
    bar = [line for line in lines if line.startswith("step ")]
    assert bar and all(line.startswith(("step ", "generated image:")) for line in lines), lines
    assert bar[-1].startswith("step 4/4 |") and "ETA " in bar[-1] and "loss=" in bar[-1], bar[-1]
    assert not any("Epoch" in line or "v_num" in line for line in bar), bar


@pytest.mark.slow
def test_verbose_brings_back_lightnings_lines_and_the_model_summary(tmp_path):
    lines = _fit_output(tmp_path, "--trainer.precision", "bf16-mixed", "--trainer.enable_progress_bar", "false", "--verbose")
    for start in ("Seed set to 0", "GPU available:", "TPU available:", "Using bfloat16 Automatic Mixed Precision", "`Trainer.fit` stopped:"):
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert any("Trainable params" in line for line in lines), lines
    assert any(line.startswith("generated image:") for line in lines), lines