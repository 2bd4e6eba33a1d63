"""The temporal loss as a kind of target (video/temporal.py), through a real ``fit``: its value by
hand, untiled and tiled, and that it holds the image to the previous frame's warped result."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.inputs.images import load_image
from nst_lightning.utilities.errors import UserError
from nst_lightning.video.temporal import TemporalLoss, save_previous
from tests.helpers import make_image

TEMPORAL = "nst_lightning.video.temporal.TemporalLoss"


@pytest.fixture
def frame(tmp_path):
    content = make_image(tmp_path / "content.png", (48, 32))
    make_image(tmp_path / "style.png", (40, 40), color=(10, 200, 90))
    previous = torch.full((1, 3, 32, 48), 0.5)
    mask = torch.ones(1, 1, 32, 48)
    mask[..., :16, :] = 0  # the top half "disoccluded": not held
    save_previous(tmp_path / "previous.pt", previous, mask)
    return content, previous, mask


def _fit(run_cli, *args):
    return run_cli("--data.content", "content.png", "--data.style", "style.png", "--trainer.callbacks+=" + TEMPORAL,
                   "--trainer.callbacks.previous", "previous.pt", *args)


@pytest.mark.parametrize("tiled", [False, True], ids=["untiled", "tiled"])
def test_the_temporal_loss_is_logged_with_its_hand_computed_value(run_cli, frame, tiled):
    content, previous, mask = frame
    tiles = ["--model.tile_size", "24"] if tiled else []
    # lr 1e-12: the image stays the photo, so the first step's loss is the photo's.
    cli = _fit(run_cli, "--trainer.callbacks.weight", "100", "--trainer.max_steps", "1", "--model.lr", "1e-12", *tiles)
    photo = load_image(str(content), 48)
    expected = 100 * (mask * (photo - previous) ** 2).sum().item() / photo.numel()
    metrics = cli.trainer.callback_metrics
    assert metrics["train/temporal_loss"].item() == pytest.approx(expected, rel=1e-5)
    # The total holds it: the photo's own content loss is 0, so the rest is the style's.
    assert metrics["train/loss"].item() == pytest.approx(expected + 10.0 * metrics["train/style_loss"].item(), rel=1e-4)
    if tiled:
        assert not cli.model.automatic_optimization  # it did run in tiles


@pytest.mark.slow
def test_the_temporal_loss_holds_the_trusted_pixels_to_the_previous_result(run_cli, frame, tmp_path):
    _, previous, mask = frame
    held = _fit(run_cli, "--trainer.callbacks.weight", "1e5", "--trainer.max_steps", "30", "--model.lr", "0.05",
                "--trainer.logger.init_args.version", "held").model.result()
    free = run_cli("--data.content", "content.png", "--data.style", "style.png", "--trainer.max_steps", "30", "--model.lr", "0.05",
                   "--trainer.logger.init_args.version", "free").model.result()
    trusted, untrusted = mask.bool().expand_as(previous), ~mask.bool().expand_as(previous)
    distance = lambda image, where: (image - previous)[where].abs().mean().item()  # noqa: E731
    assert distance(held, trusted) < 0.3 * distance(free, trusted)
    # Where the flow is not trusted the term does nothing: the image there is no nearer the previous one.
    assert distance(held, untrusted) > 0.5 * distance(free, untrusted)


def test_a_missing_or_damaged_previous_file_is_one_line(run_cli, frame, tmp_path, capsys):
    from tests.helpers import user_error

    (tmp_path / "previous.pt").write_bytes(b"not a tensor file")
    line = user_error(lambda *a: _fit(run_cli, *a), capsys, "--trainer.max_steps", "1")
    assert "previous frame's warped result previous.pt cannot be read" in line and "rerun" in line
    with pytest.raises(UserError, match="must be >= 0"):
        TemporalLoss("previous.pt", weight=-1)
