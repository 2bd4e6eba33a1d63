"""The options beyond the paper, through the real CLI (configs/debug.yaml: 48 px, random weights)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nst_lightning.inputs.color import match_color_histogram, rgb_to_yiq
from nst_lightning.inputs.images import load_image
from nst_lightning.loss.functional import gram_matrix
from nst_lightning.model.vgg import ScaledAvgPool2d
from tests.helpers import checkpoint, events, make_image, user_error

STYLES = "[builtin:starry_night,builtin:the_scream]"


def test_several_styles_blend_their_grams_with_normalised_weights(run_cli):
    cli = run_cli("--trainer.max_steps", "1", "--data.style", STYLES, "--data.style_weights", "[1,3]")
    model, data = cli.model, cli.datamodule
    assert data.style_weights == [0.25, 0.75]
    content, (starry, scream) = data.images(48)
    features = [model.vgg(image) for image in (starry, scream)]
    for name in model.hparams.style_layers:
        expected = 0.25 * gram_matrix(features[0][name]) + 0.75 * gram_matrix(features[1][name])
        assert torch.allclose(model.style_targets[name], expected, rtol=1e-4, atol=1e-6), name


def test_style_scale_sizes_the_style_relative_to_the_output(run_cli):
    cli = run_cli("--trainer.max_steps", "1", "--data.image_size", "64", "--data.style_scale", "0.5")
    style = cli.datamodule.images(64)[1][0]
    assert max(style.shape[-2:]) == 32  # 0.5 x 64, whatever the content's own size (512 px built-in)
    assert cli.datamodule.content_image.shape[-1] == 64


def test_luminance_only_transfer_keeps_the_photos_colours(run_cli, run_dir):
    cli = run_cli("--model.preserve_colors", "luminance", "--model.lr", "0.1")
    result = load_image(str(run_dir / "generated.png"))
    content = cli.datamodule.content_image
    # The chroma (I, Q) of the result is the photo's, up to 8-bit rounding and clamping at the gamut;
    # its luminance has changed.
    chroma_error = (rgb_to_yiq(result)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs()
    assert chroma_error.mean() < 0.01
    assert (rgb_to_yiq(result)[:, 0] - rgb_to_yiq(content)[:, 0]).abs().mean() > 0.01
    # VGG19 saw luminance only: the content target is that of the grey photo.
    grey = content.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    assert not torch.allclose(cli.model.content_targets["conv4_2"], cli.model.vgg(content)["conv4_2"])
    assert grey.shape == content.shape


def test_histogram_matching_recolours_the_style_before_its_grams(run_cli):
    cli = run_cli("--trainer.max_steps", "1", "--model.preserve_colors", "histogram")
    model, data = cli.model, cli.datamodule
    recoloured = match_color_histogram(data.style_image, data.content_image)
    expected = gram_matrix(model.vgg(recoloured)["conv1_1"])
    assert torch.allclose(model.style_targets["conv1_1"], expected, rtol=1e-4)
    assert not torch.allclose(model.style_targets["conv1_1"], gram_matrix(model.vgg(data.style_image)["conv1_1"]), rtol=1e-2)


MULTISCALE = ("--model.stage_steps", "[2,2]", "--model.ema_decay", "0.5", "--data.image_size", "64")


def test_multiscale_grows_the_image_and_resumes_mid_schedule(run_cli, run_dir):
    # 3 stages to 64 px: 32, 45, 64 px long sides (4:3 photo: 32x24, 45x34, 64x48); 2 + 2 + 2 steps.
    run_cli(*MULTISCALE, "--trainer.max_steps", "6", "--checkpoint.every_n_train_steps", "3")
    assert [e.value for e in events(run_dir).Scalars("train/stage")] == [0, 0, 1, 1, 2, 2]
    for name, stage, shape in [("step000003", 1, (34, 45)), ("last", 2, (48, 64))]:
        ckpt = checkpoint(run_dir / "checkpoints" / f"{name}.ckpt")
        assert ckpt["nst_stage"] == stage
        assert ckpt["state_dict"]["image"].shape[-2:] == shape
        assert ckpt["state_dict"]["average.value"].shape[-2:] == shape
        adam = ckpt["optimizer_states"][0]["state"][0]
        assert adam["exp_avg"].shape[-2:] == adam["exp_avg_sq"].shape[-2:] == shape
    # Resume from the middle of stage 1 (after step 3): the same result as the run straight through.
    mid = str(run_dir / "checkpoints" / "step000003.ckpt")
    run_cli(*MULTISCALE, "--trainer.max_steps", "6", "--trainer.logger.init_args.version", "resumed", "--ckpt_path", mid)
    assert [e.value for e in events(run_dir / "resumed").Scalars("train/stage")] == [1, 2, 2]
    straight = load_image(str(run_dir / "generated.png"))
    resumed = load_image(str(run_dir / "resumed" / "generated.png"))
    assert straight.shape == (1, 3, 48, 64)
    assert torch.allclose(resumed, straight, atol=1 / 255)


def test_averaged_iterates_are_the_output(run_cli, run_dir):
    cli = run_cli("--model.ema_decay", "0.5", "--model.lr", "0.1")
    model = cli.model
    saved = load_image(str(run_dir / "generated.png"))
    average = model.average.value / (1 - 0.5 ** model.average.count)
    assert model.average.count.item() == 4
    assert torch.allclose(saved, average.clamp(0, 1), atol=1 / 255)
    assert not torch.allclose(saved, model.image.detach().clamp(0, 1), atol=1 / 255)


def test_wasserstein_style_loss_through_the_cli(run_cli, run_dir):
    cli = run_cli("--model.style_loss", "wasserstein", "--model.lr", "0.05")
    assert set(cli.model.style_targets["conv1_1"]) >= {"mean", "second_moment", "covariance_sqrt"}
    losses = [e.value for e in events(run_dir).Scalars("train/style_loss")]
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_activation_checkpointing_gives_the_same_image(run_cli, run_dir):
    run_cli("--model.activation_checkpointing", "true")
    run_cli("--trainer.logger.init_args.version", "plain")
    recomputed, plain = load_image(str(run_dir / "generated.png")), load_image(str(run_dir / "plain" / "generated.png"))
    assert torch.allclose(recomputed, plain, atol=1 / 255)


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--model.optimizer", "lbfgs"],
        ["--model.stage_steps", "[2,2]", "--model.ema_decay", "0.5", "--trainer.max_steps", "6"],
        ["--model.preserve_colors", "luminance", "--model.tv_weight", "0.1", "--model.style_loss", "wasserstein",
         "--trainer.max_steps", "1"],
        ["--trainer.precision", "bf16-mixed", "--trainer.max_steps", "1"],
    ],
    ids=["adam", "lbfgs", "multiscale-ema", "luminance-tv-wasserstein", "bf16"],
)
@pytest.mark.slow
def test_a_tiled_run_gives_the_untiled_image(run_cli, run_dir, options):
    # Each tile's crop is the whole image at these sizes (VGG19's halo is 80 px): a step costs a pass per
    # tile. 32 px tiles, a 2x2 grid (seams both ways); 16 px with coarse-to-fine, so that its smallest
    # stage (32x24) is tiled too.
    tile, tiles = ("16", 12) if "--model.stage_steps" in options else ("32", 4)
    run_cli("--data.image_size", "64", *options)
    tiled = run_cli("--data.image_size", "64", "--model.tile_size", tile, "--trainer.logger.init_args.version", "tiled", *options)
    assert not tiled.model.automatic_optimization and len(tiled.model.tiled_loss.tiles(48, 64)) == tiles
    untiled, tiled = load_image(str(run_dir / "generated.png")), load_image(str(run_dir / "tiled" / "generated.png"))
    # The gradients agree to float rounding (tests/scale/test_tiling.py), but Adam divides each pixel's
    # gradient by its own running size: where a gradient is ~1e-6 of the largest, rounding can flip
    # its sign and move that pixel by a whole step (0.02 = 5/255). So: almost every value within
    # 8-bit rounding, and the image as a whole the same.
    difference = (tiled - untiled).abs()
    assert (difference > 1.5 / 255).float().mean() < 0.01 and difference.mean() < 0.25 / 255
    steps = [checkpoint(run_dir / version / "checkpoints" / "last.ckpt")["global_step"] for version in ("tiled", ".")]
    assert steps[0] == steps[1]


@pytest.mark.slow
def test_a_tiled_run_resumes_as_it_would_have_gone_on(run_cli, run_dir):
    tiled = ("--data.image_size", "64", "--model.tile_size", "32")  # 4 tiles
    run_cli(*tiled, "--trainer.max_steps", "3")
    run_cli(*tiled, "--trainer.max_steps", "5", "--ckpt_path", "last")
    run_cli(*tiled, "--trainer.max_steps", "5", "--trainer.logger.init_args.version", "straight")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["optimizer_states"][0]["state"][0]["step"].item() == 5
    resumed, straight = load_image(str(run_dir / "generated.png")), load_image(str(run_dir / "straight" / "generated.png"))
    assert torch.allclose(resumed, straight, atol=1 / 255)


@pytest.mark.slow
def test_a_resume_may_switch_tiling_on(run_cli, run_dir, capsys):
    # How a step is computed (tile_size, activation_checkpointing, memory_format) may change on resume:
    # e.g. to tile a run that no longer fits. What is optimised may not (test_cli.py).
    run_cli("--data.image_size", "64", "--trainer.max_steps", "3")
    cli = run_cli("--data.image_size", "64", "--trainer.max_steps", "5", "--model.tile_size", "32",
                  "--model.activation_checkpointing", "true", "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))  # fmt: skip
    assert cli.model.tiled_loss is not None and cli.model.vgg.activation_checkpointing
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 5 and saved["hyper_parameters"]["tile_size"] == 32
    assert "manual optimization" not in capsys.readouterr().err


def test_average_pooling_runs_and_lowers_the_loss(run_cli, run_dir):
    cli = run_cli("--model.pooling", "avg")
    pools = [m for m in cli.model.vgg.features if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    assert len(pools) == 4 and all(isinstance(m, ScaledAvgPool2d) for m in pools)
    losses = [e.value for e in events(run_dir).Scalars("train/loss")]
    assert losses[-1] < losses[0]


def test_init_from_an_image_resized_to_the_content(run_cli, tmp_path):
    init = make_image(tmp_path / "init.png", size=(30, 30), color=(20, 220, 120))  # square, not 4:3
    cli = run_cli("--trainer.max_steps", "1", "--model.init", "image", "--model.init_image", str(init), "--model.lr", "1e-6")
    expected = F.interpolate(load_image(str(init)), size=(36, 48), mode="bicubic", antialias=True).clamp(0, 1)
    assert torch.allclose(cli.model.image.detach(), expected, atol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.init", "image"], "--model.init image needs --model.init_image PATH"),
        (["--model.init_image", "x.png"], "--model.init_image is set but --model.init is content"),
        (["--model.init", "image", "--model.init_image", "gone.png"], "--model.init_image: file not found"),
        (["--model.stage_steps", "[2,2]"], "leaving none of --trainer.max_steps 4"),
        (["--model.stage_steps", "[1,1,1]", "--trainer.max_steps", "9"], "below VGG19's minimum"),
        (["--data.style", STYLES, "--data.style_weights", "[1]"], "one weight per style image"),
        (["--data.style", STYLES, "--data.style_weights", "[0,0]"], "all zero"),
        (["--data.style", "[builtin:starry_night,missing.jpg]"], "--data.style: file not found: missing.jpg"),
    ],
)
def test_bad_options_are_one_line_exit_2_and_nothing_written(run_cli, tmp_path, capsys, args, message):
    assert message in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.stage_steps", "[0]"], 'Parser key "model.stage_steps"'),
        (["--model.ema_decay", "1"], 'Parser key "model.ema_decay"'),
        (["--model.tile_size", "0"], 'Parser key "model.tile_size"'),
        (["--model.pooling", "l2"], 'Parser key "model.pooling"'),
        (["--model.preserve_colors", "yes"], 'Parser key "model.preserve_colors"'),
        (["--data.style_scale", "0"], 'Parser key "data.style_scale"'),
    ],
)
def test_bad_options_are_refused_as_the_command_line_is_read(parse_refusal, args, message):
    assert message in parse_refusal(*args)
