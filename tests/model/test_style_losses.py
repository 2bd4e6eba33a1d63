"""The distribution style losses (``sliced_wasserstein``, ``nearest_neighbour``) through the real paths:
``fit`` (resumed, tiled, in regions, coarse to fine), ``batch``, ``video`` and ``stylize()``, on
configs/debug.yaml's tiny inputs with random weights."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from nst_lightning import stylize
from nst_lightning.__main__ import dispatch
from nst_lightning.inputs.images import load_image
from nst_lightning.loss.neighbours import NearestNeighbourStatistic
from nst_lightning.loss.sliced import SlicedWassersteinStatistic
from tests.helpers import DEBUG_CONFIG, checkpoint, events, make_image, scalar_steps, user_error

LOSSES = {
    "sliced_wasserstein": ("--model.style_loss", "sliced_wasserstein", "--model.sw_directions", "16"),
    "nearest_neighbour": ("--model.style_loss", "nearest_neighbour", "--model.nn_refresh", "2"),
}


def result(run_dir, version: str = ""):
    return load_image(str((run_dir / version if version else run_dir) / "generated.png"))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_loss_runs_lowers_its_style_loss_and_takes_its_options(run_cli, run_dir, name):
    cli = run_cli(*LOSSES[name], "--trainer.max_steps", "6")
    statistic = cli.model.style_statistic
    assert isinstance(statistic, {"sliced_wasserstein": SlicedWassersteinStatistic, "nearest_neighbour": NearestNeighbourStatistic}[name])
    assert (statistic.directions if name == "sliced_wasserstein" else statistic.refresh) == (16 if name == "sliced_wasserstein" else 2)
    style = [event.value for event in events(run_dir).Scalars("train/style_loss")]
    assert scalar_steps(run_dir, "train/style_loss") == list(range(6))
    assert style[-1] < style[0]
    assert f"style_loss: {name}" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_resumed_run_is_the_uninterrupted_one(run_cli, run_dir, name):
    # Sliced Wasserstein draws new directions every step from the seed and the step, so the resumed
    # steps draw what the uninterrupted run drew; nearest neighbour (refresh 2) resumes at step 2, a
    # multiple of its refresh, where the uninterrupted run matched anew too.
    run_cli(*LOSSES[name], "--trainer.max_steps", "2")
    run_cli(*LOSSES[name], "--trainer.max_steps", "4", "--ckpt_path", "last")
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    run_cli(*LOSSES[name], "--trainer.max_steps", "4", "--trainer.logger.init_args.version", "straight")
    assert torch.equal(result(run_dir), result(run_dir, "straight"))
    # Another seed draws other directions (and starts nothing else differently: the start is the photo).
    if name == "sliced_wasserstein":
        run_cli(*LOSSES[name], "--trainer.max_steps", "4", "--seed_everything", "1", "--trainer.logger.init_args.version", "seed1")
        assert not torch.equal(result(run_dir), result(run_dir, "seed1"))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_tiled_runs_are_the_untiled_ones(run_cli, run_dir, name):
    # 64 px in 32 px tiles: four tiles a step. Each step's gradient agrees to rounding
    # (tests/scale/test_tiling.py); as for Gram (tests/model/test_options.py), Adam moves a pixel whose
    # gradient is ~0 by a whole step when rounding flips its sign, so: almost every value within 8-bit
    # rounding, the image the same. Sliced Wasserstein's gradient also jumps where two projections swap
    # ranks, by 1/directions of a layer's: with 16 directions instead of the layer's channels, 3 steps
    # took such a difference to 2.8% of the values (8/255 at most), so the default directions here.
    size = ("--data.image_size", "64", "--trainer.max_steps", "3", "--model.style_loss", name)
    untiled = run_cli(*size, "--trainer.logger.init_args.version", "untiled")
    cli = run_cli(*size, "--model.tile_size", "32", "--trainer.logger.init_args.version", "tiled")
    assert len(cli.model.tiled_loss.tiles(*cli.model.image.shape[-2:])) == 4 and untiled.model.tiled_loss is None
    difference = (result(run_dir, "tiled") - result(run_dir, "untiled")).abs()
    assert (difference > 1.5 / 255).float().mean() < 0.01 and difference.mean() < 0.25 / 255


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_regions_blends_and_stages(run_cli, run_dir, name):
    # Two regions, the second blending two paintings, over two coarse-to-fine stages: a loss per region.
    regions = (
        '[{"mask": "builtin:tubingen_sky", "style": "builtin:starry_night"}, '
        '{"mask": "builtin:tubingen_sky", "invert": true, "style": ["builtin:the_scream", "builtin:shipwreck"]}]'
    )
    cli = run_cli(*LOSSES[name], "--data.content", "builtin:tubingen", "--data.regions", regions, "--model.stage_steps", "[2]",
                  "--data.image_size", "64")  # fmt: skip
    assert len(cli.model.style_targets["conv3_1"].targets) == 2
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["nst_stage"] == 1
    assert torch.isfinite(result(run_dir)).all()


# Each loss with its own option, as the Python API takes them.
API_OPTIONS = {"sliced_wasserstein": {"sw_directions": 8}, "nearest_neighbour": {"nn_refresh": 2}}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_and_stylize_take_each(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "photo.png", (40, 30))
    make_image(tmp_path / "painting.png", (30, 40), color=(10, 200, 200))
    with pytest.raises(SystemExit) as done:
        dispatch(["batch", "--config", DEBUG_CONFIG, "--contents", "photo.png", "--styles", "painting.png", "--out", "styled",
                  *LOSSES[name]])  # fmt: skip
    assert done.value.code == 0
    assert f"style_loss: {name}" in (tmp_path / "styled" / "photo__painting" / "config.yaml").read_text()
    image = stylize("photo.png", "painting.png", image_size=48, max_steps=3, weights="random", progress_bar=False,
                    style_loss=name, **API_OPTIONS[name])  # fmt: skip
    assert image.size == (48, 36)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_video_frames_keep_the_temporal_loss(tmp_path, monkeypatch, name):
    from tests.video.clips import make_pan_clip

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "style.png", (48, 48), color=(10, 200, 90))
    make_pan_clip(tmp_path / "pan.mp4", count=3)
    with pytest.raises(SystemExit) as done:
        dispatch(["video", "--config", DEBUG_CONFIG, "--data.image_size", "64", "--input", "pan.mp4", "--style", "style.png",
                  "--out", "styled", "--frames", "0:2", "--video.frame_steps", "2", *LOSSES[name]])  # fmt: skip
    assert done.value.code == 0
    second = json.loads((tmp_path / "styled" / "runs" / "frame_000002" / "frame.json").read_text())
    assert second["temporal_loss"] > 0 and second["style_loss"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.sw_directions", "8"], "--model.sw_directions is for --model.style_loss sliced_wasserstein, not gram"),
        (["--model.style_loss", "nearest_neighbour", "--model.sw_directions", "8"], "not nearest_neighbour"),
        (["--model.nn_refresh", "3"], "--model.nn_refresh is for --model.style_loss nearest_neighbour, not gram"),
        (["--model.style_loss", "sliced_wasserstein", "--model.nn_refresh", "2"], "not sliced_wasserstein"),
        (["--model.style_loss", "sliced", "--trainer.max_steps", "1"], 'Parser key "model.style_loss"'),
        (["--model.sw_directions", "0", "--model.style_loss", "sliced_wasserstein"], 'Parser key "model.sw_directions"'),
    ],
)
def test_an_option_of_another_loss_is_one_line_and_nothing_written(run_cli, tmp_path, capsys, args, message):
    # An option that the chosen loss would silently ignore is refused, so a user never believes it counted.
    assert message in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()
