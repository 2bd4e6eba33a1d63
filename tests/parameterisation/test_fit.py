"""Runs whose optimizer moves a Laplacian pyramid's coordinates: the real CLI on configs/debug.yaml."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nst_lightning.parameterisation.pyramid import packed_length
from tests.helpers import checkpoint, user_error

PYRAMID = ("--model.parameterisation", "laplacian_pyramid", "--model.pyramid_levels", "3")


def _coarse_share(change: torch.Tensor) -> float:
    """The share of a change's energy in its 4x4 blocks' means: ~1/16 for pixel noise, ~1 for smooth blobs."""
    return float(F.avg_pool2d(change, 4).pow(2).sum() * 16 / change.pow(2).sum())


def test_a_pyramid_run_moves_smooth_blobs_and_checkpoints_the_image_alone(run_cli, run_dir):
    pixels = run_cli("--trainer.logger.init_args.version", "pixels")
    pyramid = run_cli(*PYRAMID)
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert list(saved["state_dict"]) == ["image"] and saved["hyper_parameters"]["parameterisation"] == "laplacian_pyramid"
    height, width = saved["state_dict"]["image"].shape[-2:]
    assert saved["optimizer_states"][0]["state"][0]["exp_avg"].shape == (1, 3, packed_length(height, width, 3))
    assert pyramid.model.image.grad is None  # taken to the coordinates each step, never left to add up
    # The same start and the same network; Adam moves each coordinate by about its step size, so the
    # pyramid's coarse bands move blobs where the pixels' steps are as rough as their gradient's signs.
    start = pixels.datamodule.images(pixels.datamodule.image_size)[0]
    by_pixels = checkpoint(run_dir / "pixels" / "checkpoints" / "last.ckpt")["state_dict"]["image"] - start
    by_pyramid = saved["state_dict"]["image"] - start
    assert _coarse_share(by_pyramid) > 2 * _coarse_share(by_pixels)


def test_a_band_gain_moves_the_coarse_bands_further(run_cli, run_dir):
    # One Adam step moves every coordinate by about lr whatever the gain; with a gain of 2 the coarser
    # bands' coordinates stand for 2 and 4 times their blobs, so the step to the image is smoother.
    run_cli(*PYRAMID, "--trainer.max_steps", "1", "--trainer.logger.init_args.version", "even")
    gained = run_cli(*PYRAMID, "--trainer.max_steps", "1", "--model.pyramid_band_gain", "2")
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["hyper_parameters"]["pyramid_band_gain"] == 2.0
    start = gained.datamodule.images(gained.datamodule.image_size)[0]
    even = checkpoint(run_dir / "even" / "checkpoints" / "last.ckpt")["state_dict"]["image"] - start
    assert _coarse_share(saved["state_dict"]["image"] - start) > 1.3 * _coarse_share(even)  # measured: 0.82 against 0.55


@pytest.mark.parametrize("options", [[], ["--model.optimizer", "lbfgs"]], ids=["adam", "lbfgs"])
def test_one_level_is_the_pixels_run(run_cli, run_dir, options):
    run_cli(*options, "--trainer.logger.init_args.version", "pixels")
    run_cli(*options, "--model.parameterisation", "laplacian_pyramid", "--model.pyramid_levels", "1")
    pixels = checkpoint(run_dir / "pixels" / "checkpoints" / "last.ckpt")["state_dict"]["image"]
    pyramid = checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]["image"]
    assert torch.allclose(pyramid, pixels, atol=1e-6)


def test_a_pyramid_run_resumes_as_it_would_have_gone_on(run_cli, run_dir):
    run_cli(*PYRAMID, "--trainer.max_steps", "2")
    run_cli(*PYRAMID, "--ckpt_path", "last")
    run_cli(*PYRAMID, "--trainer.logger.init_args.version", "straight")
    resumed = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    straight = checkpoint(run_dir / "straight" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 4
    assert torch.allclose(resumed["state_dict"]["image"], straight["state_dict"]["image"], atol=1e-6)


def test_a_tiled_pyramid_run_gives_the_untiled_image(run_cli, run_dir):
    run_cli(*PYRAMID, "--data.image_size", "64")
    tiled = run_cli(*PYRAMID, "--data.image_size", "64", "--model.tile_size", "32", "--trainer.logger.init_args.version", "tiled")
    assert not tiled.model.automatic_optimization and len(tiled.model.tiled_loss.tiles(48, 64)) == 4
    untiled = checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]["image"]
    tiled = checkpoint(run_dir / "tiled" / "checkpoints" / "last.ckpt")["state_dict"]["image"]
    # The tiled gradient is the untiled one up to rounding, and so are the coordinates' (measured: at
    # most 0.2/255 apart; pixels allow a whole step where rounding flips a tiny gradient's sign,
    # tests/model/test_options.py, which the coarse bands' summed gradients do not show here).
    assert (tiled - untiled).abs().max() < 1 / 255


def test_a_checkpoint_of_the_other_parameterisation_is_refused_in_one_line(run_cli, run_dir, capsys):
    run_cli("--trainer.max_steps", "2")  # pixels
    line = user_error(run_cli, capsys, *PYRAMID, "--ckpt_path", "last")
    assert "--model.parameterisation is laplacian_pyramid but" in line and "resume with --model.parameterisation pixels" in line
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2  # nothing written


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_coarse_to_fine_carries_the_pyramid_and_its_state_to_each_size_and_resumes(run_cli, run_dir, optimizer):
    staged = (*PYRAMID, "--model.optimizer", optimizer, "--data.image_size", "64", "--model.stage_steps", "[2]", "--trainer.max_steps", "4")
    straight = run_cli(*staged, "--trainer.logger.init_args.version", "straight")
    coordinates = straight.model.parameterisation.coordinates
    assert tuple(straight.model.image.shape[-2:]) == (48, 64) and coordinates.shape[-1] == packed_length(48, 64, 3)
    state = straight.trainer.optimizers[0].state[coordinates]
    if optimizer == "adam":  # the moments carried over, band by band, at the new size
        assert state["exp_avg"].shape == coordinates.shape and int(state["step"]) == 4
    run_cli(*staged[:-1], "3")  # stops in the second stage, then resumes there
    run_cli(*staged, "--ckpt_path", "last")
    resumed = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert resumed["nst_stage"] == 1 and resumed["global_step"] == 4
    expected = checkpoint(run_dir / "straight" / "checkpoints" / "last.ckpt")["state_dict"]["image"]
    assert torch.allclose(resumed["state_dict"]["image"], expected, atol=1e-5)
