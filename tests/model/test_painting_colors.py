"""``--model.init painting_colors``: the photo recoloured to its painting's (or blend's) colour mean and
covariance, checked against hand-computed statistics and through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.inputs.color import blended_color_statistics, recolor
from tests.helpers import CONFIGS, DEBUG_CONFIG, checkpoint, user_error

REGIONS_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "regions.yaml")


def flat(rgb: tuple[float, float, float], h: int = 4, w: int = 6) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def test_the_blend_of_two_flat_colours_has_the_mixtures_mean_and_covariance():
    a, b = (0.2, 0.4, 0.6), (0.8, 0.4, 0.0)
    mean, cov = blended_color_statistics([flat(a), flat(b, 8, 8)], [0.75, 0.25])
    # By hand: mean = 0.75 a + 0.25 b; each image alone has no spread, so the covariance is that of
    # a two-point distribution, w1 w2 (a - b)(a - b)^T, with a - b = (-0.6, 0, 0.6).
    assert mean.flatten().tolist() == pytest.approx([0.35, 0.4, 0.45])
    d = torch.tensor([[-0.6], [0.0], [0.6]])
    assert torch.allclose(cov, 0.75 * 0.25 * d @ d.T, atol=1e-6)


def test_recolor_gives_the_target_mean_and_covariance():
    torch.manual_seed(0)
    photo = 0.3 + 0.4 * torch.rand(1, 3, 32, 32)
    target = torch.tensor([[0.5], [0.45], [0.4]])
    cov = torch.tensor([[0.004, 0.001, 0.0], [0.001, 0.003, 0.0005], [0.0, 0.0005, 0.002]])
    out = recolor(photo, target, cov)
    pixels = out.permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.allclose(pixels.mean(1, keepdim=True), target, atol=1e-5)
    centred = pixels - pixels.mean(1, keepdim=True)
    assert torch.allclose(centred @ centred.T / pixels.shape[1], cov, atol=1e-5)


@pytest.mark.parametrize("blend", [False, True])
def test_the_cli_starts_from_the_photo_in_the_paintings_colours(run_cli, blend):
    style = ["--data.style", "[builtin:starry_night, builtin:the_scream]", "--data.style_weights", "[3, 1]"] if blend else []
    # A step too small to move a pixel: the parameter after it is the start.
    cli = run_cli("--trainer.max_steps", "1", "--model.init", "painting_colors", "--model.lr", "1e-12", *style)
    content, paintings = cli.datamodule.images(cli.datamodule.image_size)
    expected = recolor(content, *blended_color_statistics(paintings, [0.75, 0.25] if blend else [1.0]))
    image = cli.model.image.detach()
    assert torch.allclose(image, expected, atol=1e-6)
    assert (image - content).abs().mean() > 0.02  # recoloured, not the photo itself
    if blend:  # the mixture, not the first painting alone
        assert not torch.allclose(image, recolor(content, *blended_color_statistics(paintings[:1], [1.0])), atol=1e-3)


def test_init_color_strength_starts_on_the_line_from_the_photo_to_its_recolouring(run_cli):
    cli = run_cli("--trainer.max_steps", "1", "--model.init", "painting_colors", "--model.lr", "1e-12", "--model.init_color_strength", "0.25")
    content, paintings = cli.datamodule.images(cli.datamodule.image_size)
    full = recolor(content, *blended_color_statistics(paintings, [1.0]))
    # By hand: a quarter of the way, content + 0.25 (full - content), pixel by pixel.
    assert torch.allclose(cli.model.image.detach(), 0.75 * content + 0.25 * full, atol=1e-6)


def test_an_out_of_range_color_strength_is_one_line_at_parse_time(run_cli, run_dir, capsys):
    line = user_error(run_cli, capsys, "--model.init", "painting_colors", "--model.init_color_strength", "1.5")
    assert 'Parser key "model.init_color_strength"' in line, line
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "args",
    [["--model.preserve_colors", "luminance"], ["--model.preserve_colors", "histogram"], ["--config", REGIONS_CONFIG]],
    ids=["luminance", "histogram", "regions"],
)
def test_with_the_photos_colours_or_regions_painting_colors_starts_from_the_photo(run_cli, args):
    # The colours the style targets ask for are then the photo's own (or differ by region): the start is
    # the photo, so that configs/quick.yaml (painting_colors) layers under blend.yaml and regions.yaml.
    cli = run_cli("--trainer.max_steps", "1", "--model.init", "painting_colors", "--model.lr", "1e-12",
                  "--model.init_color_strength", "0.5", *args)
    content, _ = cli.datamodule.images(cli.datamodule.image_size)
    assert torch.allclose(cli.model.image.detach(), content, atol=1e-6)


def test_fast_yaml_over_quick_yaml_runs_lbfgs_from_the_paintings_colours(run_cli, run_dir):
    # configs/fast.yaml as the README layers it, at debug's size and weights (the last --config wins).
    cli = run_cli("--config", str(CONFIGS / "quick.yaml"), "--config", str(CONFIGS / "fast.yaml"), "--config", DEBUG_CONFIG,
                  "--trainer.max_steps", "3", "--model.weights", "random")
    assert isinstance(cli.trainer.optimizers[0], torch.optim.LBFGS)
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == 1.0  # quick.yaml leaves lr to the optimizer's default
    assert cli.model.optim.init == "painting_colors" and cli.trainer.global_step == 3
    assert cli.model.optim.ema_decay is None and cli.model.average is None  # L-BFGS: the last iterate
    # Its measured setting whatever quick.yaml optimises: the pixels, at style weight 10.
    assert cli.model.optim.parameterisation == "pixels" and cli.model.loss_options.style_weight == 10.0
    assert (run_dir / "generated.png").exists()


def test_quick_yaml_steps_a_laplacian_pyramid_of_the_image(run_cli, run_dir):
    # quick.yaml's measured setting: the pyramid's coordinates are what Adam moves (at its default 0.02), each
    # coarser band 0.8 times as far, from a quarter of the way to the painting's colours, style weight 9.25.
    cli = run_cli("--config", str(CONFIGS / "quick.yaml"), "--config", DEBUG_CONFIG, "--trainer.max_steps", "2",
                  "--model.weights", "random")
    optimizer = cli.trainer.optimizers[0]
    assert optimizer.param_groups[0]["params"] == [cli.model.parameterisation.coordinates]
    assert cli.model.parameterisation.levels == 5 and cli.model.parameterisation.gain == 0.8
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")["hyper_parameters"]
    assert saved["parameterisation"] == "laplacian_pyramid" and saved["lr"] is None
    assert (saved["style_weight"], saved["init_color_strength"], saved["lr_floor"]) == (9.25, 0.25, 0.3)


def test_quick_yaml_outputs_the_average_of_its_iterates(run_cli, run_dir):
    # quick.yaml's ema_decay 0.9: the image written is the average, not the last iterate.
    cli = run_cli("--config", str(CONFIGS / "quick.yaml"), "--config", DEBUG_CONFIG, "--trainer.max_steps", "4",
                  "--model.weights", "random")
    average = cli.model.average
    assert cli.model.optim.ema_decay == 0.9 and average is not None and average.count.item() == 4
    assert not torch.equal(average.get(), cli.model.image.detach())
    written = torch.from_numpy(np.asarray(Image.open(run_dir / "generated.png").convert("RGB")).copy())
    expected = (average.get()[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    assert (written.int() - expected.int()).abs().max() <= 1
