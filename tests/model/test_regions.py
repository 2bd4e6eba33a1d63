"""Spatial control: guided statistics, masks at each layer, regions through the CLI, bad masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.evaluation.scorer import Scorer
from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.inputs.masks import Region, read_mask
from nst_lightning.loss.functional import gram_matrix
from nst_lightning.loss.guided import layer_masks
from nst_lightning.loss.statistics import WassersteinStatistic
from nst_lightning.model.module import StyleTransfer
from nst_lightning.model.targets import Regions
from nst_lightning.model.vgg import VGG19Features
from nst_lightning.utilities.errors import UserError
from tests.helpers import CONFIGS, events, make_image, user_error

REGIONS = "[{mask: sky.png, style: s1.png}, {mask: sky.png, invert: true, style: s2.png}]"


@pytest.fixture
def images(tmp_path):
    """A 48x36 photo, two paintings, and a mask of its top third ("sky")."""
    make_image(tmp_path / "photo.png", size=(48, 36))
    make_image(tmp_path / "s1.png", size=(40, 40), color=(10, 200, 200))
    make_image(tmp_path / "s2.png", size=(40, 30), color=(240, 240, 10))
    sky = np.zeros((36, 48), np.uint8)
    sky[:12] = 255
    Image.fromarray(sky).save(tmp_path / "sky.png")
    return tmp_path


def test_a_guided_gram_is_the_mask_weighted_average_of_outer_products():
    # Two channels at three positions: f0 = (1, 2), f1 = (3, -1), f2 = (0, 4).
    features = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 4.0]]).reshape(1, 2, 1, 3)
    hard = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 1, 3)
    # (f0 f0^T + f1 f1^T) / 2 = ([1, 2; 2, 4] + [9, -3; -3, 1]) / 2
    # (Up to rounding: the weighted Gram is the plain one of the map scaled by the weights' square roots.)
    assert torch.allclose(gram_matrix(features, hard)[0], torch.tensor([[5.0, -0.5], [-0.5, 2.5]]), atol=1e-6)
    soft = torch.tensor([0.5, 0.0, 1.5]).reshape(1, 1, 1, 3)
    # (0.5 f0 f0^T + 1.5 f2 f2^T) / 2 = ([0.5, 1; 1, 2] + [0, 0; 0, 24]) / 2
    assert torch.allclose(gram_matrix(features, soft)[0], torch.tensor([[0.25, 0.5], [0.5, 13.0]]))
    # Normalised by the mask's mass: a mask twice as strong gives the same statistic.
    assert torch.allclose(gram_matrix(features, 2 * soft), gram_matrix(features, soft))
    moments = WassersteinStatistic().target(features, hard)
    assert torch.allclose(moments["mean"], torch.tensor([2.0, 0.5]))


@pytest.mark.parametrize("method", ["downsample", "propagate"])
def test_masks_reach_every_layer_with_its_shape_and_mass(method):
    vgg = VGG19Features(["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"], "random")
    mask = torch.zeros(1, 1, 64, 48)
    mask[..., :32, :] = 1  # the top half
    layers = {name: vgg.layer_index(name) for name in vgg.layers}
    masks = layer_masks(mask, vgg.features, layers, method)
    features = vgg(torch.rand(1, 3, 64, 48))
    for name in vgg.layers:
        assert masks[name].shape[-2:] == features[name].shape[-2:], name
        assert float(masks[name].min()) >= 0 and float(masks[name].max()) <= 1
        if method == "downsample":  # the area average keeps the mask's mass exactly
            assert math.isclose(float(masks[name].mean()), 0.5, rel_tol=1e-6), name
        else:  # through max pooling the region grows by what its receptive field reaches
            assert float(masks[name].mean()) >= 0.5 - 1e-6, name
    assert float(layer_masks(mask, vgg.features, layers, "propagate")["conv5_1"].mean()) > 0.5


def test_one_region_covering_everything_is_exactly_the_unguided_loss(images):
    white = Image.new("L", (48, 36), 255)
    white.save(images / "all.png")
    for style_loss in ("gram", "wasserstein"):
        torch.manual_seed(0)
        model = StyleTransfer(weights="random", style_loss=style_loss)
        plain = StyleTransferData(str(images / "photo.png"), str(images / "s1.png"), image_size=48)
        region = {"mask": str(images / "all.png"), "style": str(images / "s1.png")}
        guided = StyleTransferData(str(images / "photo.png"), regions=[region], image_size=48)
        content, styles = plain.images(48)
        image = torch.rand_like(content)
        model.compute_targets(content, styles)
        expected = model(image)
        model.use_targets(Regions().compute(model.measure(), guided, 48))
        got = model(image)
        assert all(torch.equal(got[key], expected[key]) for key in expected), style_loss


def test_two_regions_take_their_own_style_through_the_cli(images, run_cli, run_dir, monkeypatch):
    monkeypatch.chdir(images)
    cli = run_cli("--data.content", "photo.png", "--data.regions", REGIONS, "--trainer.max_steps", "2")
    assert Image.open(run_dir / "generated.png").size == (48, 36)
    targets = cli.model.style_targets["conv3_1"]
    assert targets.shares == [0.5, 0.5] and [float(m.mean()) for m in targets.masks] == pytest.approx([1 / 3, 2 / 3], abs=0.02)
    assert events(run_dir).Tags()["images"][:4] == ["input/content", "input/style/1", "input/style/2", "input/region/1"]
    # Each region has its own painting's statistics as its target.
    assert not torch.equal(targets.targets[0], targets.targets[1])


def test_a_resume_with_other_masks_says_so_in_one_line(images, run_cli, monkeypatch, capsys):
    monkeypatch.chdir(images)
    run_cli("--data.content", "photo.png", "--data.regions", REGIONS, "--trainer.max_steps", "2")
    half = np.zeros((36, 48), np.uint8)
    half[:18] = 255
    Image.fromarray(half).save(images / "sky.png")
    line = user_error(run_cli, capsys, "--data.content", "photo.png", "--data.regions", REGIONS, "--trainer.max_steps", "4", "--ckpt_path", "last")
    assert "--data.regions (their masks, styles or weights) differ" in line


def _bad(images, tmp_regions: str) -> str:
    with pytest.raises(UserError) as error:
        StyleTransferData(str(images / "photo.png"), regions=eval(tmp_regions), image_size=48).load()
    return error.value.for_cli()


def test_bad_masks_and_region_lists_are_one_line_each(images):
    sky = str(images / "sky.png")
    Image.new("L", (48, 36), 0).save(images / "black.png")
    Image.new("L", (48, 48), 255).save(images / "square.png")
    Image.new("L", (482, 360), 255).save(images / "almost.png")  # aspect 0.4% off: resized
    (images / "notes.png").write_text("not an image")
    s1 = str(images / "s1.png")
    cases = {
        f"[dict(mask='{images / 'black.png'}', style='{s1}')]": "selects nothing (it is all black)",
        f"[dict(mask='{images / 'square.png'}', style='{s1}')]": "is 48x48 but its image is 48x36",
        f"[dict(mask='{images / 'notes.png'}', style='{s1}')]": "is not a readable image",
        f"[dict(mask='{sky}')]": "no region has a style",
        "[]": "is an empty list",
        f"[dict(mask='{sky}', style='{s1}', color='#00ff00')]": "no pixel of",
        f"[dict(mask='{sky}', style='{s1}', color='green')]": "is not #rrggbb",
        f"[dict(mask='{images / 'missing.png'}', style='{s1}')]": "file not found",
    }
    for regions, words in cases.items():
        line = _bad(images, regions)
        assert words in line and line.startswith("--data.regions"), (regions, line)
    data = StyleTransferData(str(images / "photo.png"), regions=[Region(mask=str(images / "almost.png"), style=s1)], image_size=48)
    data.load()
    assert data.region_inputs(48)[0]["mask"] is None  # all white, resized: the whole photo


def test_a_colour_label_image_selects_each_region(images):
    labels = np.zeros((36, 48, 3), np.uint8)
    labels[:12] = (255, 0, 0)
    labels[12:] = (0, 0, 255)
    Image.fromarray(labels).save(images / "labels.png")
    red = read_mask((images / "labels.png").read_bytes(), (36, 48), "labels.png", "mask", color="#ff0000")
    blue = read_mask((images / "labels.png").read_bytes(), (72, 96), "labels.png", "mask", color="#0000ff")
    assert float(red.mean()) == pytest.approx(1 / 3) and float(blue.mean()) == pytest.approx(2 / 3)
    assert blue.shape == (1, 1, 72, 96)


@pytest.mark.slow
def test_each_region_is_closer_to_its_own_painting_with_real_weights(run_cli, run_dir, shared_weights, monkeypatch, tmp_path):
    """configs/regions.yaml at 128 px: the sky nearer The Starry Night than The Scream, the town nearer
    The Scream than The Starry Night (guided style distances inside each region)."""
    monkeypatch.chdir(tmp_path)
    run_cli(
        "--config", str(CONFIGS / "regions.yaml"), "--model.weights", str(shared_weights), "--data.image_size", "128",
        "--trainer.max_steps", "60", "--trainer.logger.init_args.name", "debug", "--trainer.logger.init_args.version", "",
        config=str(CONFIGS / "quick.yaml"),
    )
    from nst_lightning.inputs.images import decode_image
    from nst_lightning.inputs.sources import read_source

    result = decode_image((run_dir / "generated.png").read_bytes())
    scorer = Scorer(str(shared_weights))
    sky = read_mask(read_source("builtin:tubingen_sky", "mask"), tuple(result.shape[-2:]), "sky", "mask")
    starry, scream = (decode_image(read_source(f"builtin:{name}", "style")) for name in ("starry_night", "the_scream"))
    photo = decode_image(read_source("builtin:tubingen", "content"), max(result.shape[-2:]))
    assert scorer.style_distance(result, starry, sky) < scorer.style_distance(result, scream, sky)
    assert scorer.style_distance(result, scream, 1 - sky) < scorer.style_distance(result, starry, 1 - sky)
    # ...and each nearer its own painting than the photo was.
    assert scorer.style_distance(result, starry, sky) < scorer.style_distance(photo, starry, sky)
    assert scorer.style_distance(result, scream, 1 - sky) < scorer.style_distance(photo, scream, 1 - sky)


def test_regions_follow_coarse_to_fine_and_run_in_a_batch(images, run_cli, run_dir, monkeypatch, capsys):
    monkeypatch.chdir(images)
    # Coarse-to-fine: the masks are resized with the photo at each stage (24 px, then 48 px).
    cli = run_cli("--data.content", "photo.png", "--data.regions", REGIONS, "--model.stage_steps", "[2]", "--trainer.max_steps", "4")
    assert cli.model.image.shape[-2:] == (36, 48)
    assert cli.model.style_targets["conv1_1"].masks[0].shape[-2:] == (36, 48)
    # A batch passes the regions to every job (here two photos of the mask's aspect).
    make_image(images / "photo2.png", size=(48, 36), color=(20, 160, 60))
    with pytest.raises(SystemExit) as exit_info:
        from nst_lightning.__main__ import dispatch

        dispatch(["batch", "--config", str(CONFIGS / "debug.yaml"), "--contents", "[photo.png, photo2.png]", "--styles", "s1.png",
                  "--out", "styled", "--data.regions", REGIONS])
    assert exit_info.value.code == 0
    assert all((images / "styled" / job / "generated.png").is_file() for job in ("photo__s1", "photo2__s1"))

