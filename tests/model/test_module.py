"""The core without the CLI: StyleTransfer + StyleTransferData + a plain Trainer, as an API user has it."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from nst_lightning import CoarseToFine, DivergenceGuard, LossLogger, StyleTransfer, StyleTransferData
from nst_lightning.callbacks import StyleWeightRamp
from nst_lightning.inputs.images import load_image
from nst_lightning.loss.functional import content_loss, gram_matrix, relative_squared_error
from nst_lightning.loss.statistics import WassersteinStatistic
from nst_lightning.utilities.errors import UserError
from tests.helpers import checkpoint

# The checkpoint format before the core was split (commit bc8b108) differs from today's only in the
# hyperparameters added since: checked against a checkpoint that commit wrote (same top-level keys,
# callback states, loops, stage keys and optimizer state; identical image, average and count for the
# same run). So a checkpoint of today's without them is one of that format.
NEW_OPTIONS = ("style_loss", "activation_checkpointing", "tile_size")
MULTISCALE = dict(weights="random", stage_steps=[2, 2], ema_decay=0.5)


@pytest.fixture
def old_checkpoint(tmp_path) -> Path:
    """A mid-schedule checkpoint (step 3 of 6, stage 1, with EMA) in the format of bc8b108."""
    model = StyleTransfer(**MULTISCALE)
    every_3 = ModelCheckpoint(dirpath=tmp_path, filename="step{step}", every_n_train_steps=3, save_top_k=-1, auto_insert_metric_name=False)
    trainer = pl.Trainer(
        max_steps=6, accelerator="cpu", logger=False, callbacks=[every_3],
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        trainer.fit(model, datamodule=StyleTransferData(image_size=64))
    path = tmp_path / "step3.ckpt"
    state = checkpoint(path)
    for name in NEW_OPTIONS:
        del state["hyper_parameters"][name]
    torch.save(state, path)
    return path


def fit(model: StyleTransfer, steps: int = 2, image_size: int = 48, ckpt_path: str | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=StyleTransferData(image_size=image_size), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def test_the_image_is_the_only_parameter_and_the_checkpoint_holds_no_vgg_weights():
    model = StyleTransfer(weights="random")
    fit(model)
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["image"]
    assert set(model.state_dict()) == {"image"}
    assert model.strict_loading is False
    assert {type(c) for c in model.configure_callbacks()} == {DivergenceGuard, LossLogger, CoarseToFine, StyleWeightRamp}


def test_forward_is_the_weighted_sum_of_hand_computed_losses():
    model = StyleTransfer(weights="random", content_weight=2.0, style_weight=3.0, style_layer_weights=[1, 1, 1, 1, 4])
    fit(model, steps=1)
    with torch.no_grad():
        losses = model()
        features = model.vgg(model.image)
    content = content_loss(features["conv4_2"], model.content_targets["conv4_2"])
    shares = dict(zip(["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"], [0.125, 0.125, 0.125, 0.125, 0.5]))
    style = sum(share * relative_squared_error(gram_matrix(features[n]), model.style_targets[n]) for n, share in shares.items())
    assert losses["content_loss"].item() == pytest.approx(content.item(), rel=1e-5)
    assert losses["style_loss"].item() == pytest.approx(style.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(2 * content.item() + 3 * style.item(), rel=1e-5)


def test_wasserstein_style_loss_runs_and_lowers_the_loss():
    model = StyleTransfer(weights="random", style_loss="wasserstein", lr=0.05)
    assert isinstance(model.style_statistic, WassersteinStatistic)
    fit(model, steps=1)
    with torch.no_grad():
        before = model()["loss"].item()
    fit(model, steps=6)
    with torch.no_grad():
        after = model()["loss"].item()
    assert set(model.style_targets["conv5_1"]) >= {"mean", "covariance_sqrt"}
    assert after < before


def test_multiscale_with_lbfgs_restarts_it_at_each_stage():
    model = StyleTransfer(weights="random", optimizer="lbfgs", stage_steps=[2, 2])
    trainer = fit(model, steps=6, image_size=64)
    assert model.image.shape[-2:] == (48, 64)
    # A new L-BFGS for the last stage: its history holds only that stage's 2 steps, at the new size.
    state = trainer.optimizers[0].state[model.image]
    assert state["n_iter"] == 2 and state["prev_flat_grad"].numel() == 3 * 48 * 64


def test_errors_name_python_parameters():
    with pytest.raises(UserError) as err:
        StyleTransfer(weights="random", style_layer_weights=[1.0])
    assert str(err.value).startswith("style_layer_weights has 1 values for 5 style layers")
    assert err.value.for_cli().startswith("--model.style_layer_weights has 1 values")
    with pytest.raises(UserError, match=r"^init image needs init_image PATH$"):
        StyleTransfer(weights="random", init="image")
    with pytest.raises(UserError, match=r"^weights: no such file"):
        StyleTransfer(weights="nowhere.pth")


def test_a_checkpoint_of_the_format_before_the_redesign_resumes(old_checkpoint):
    saved = checkpoint(old_checkpoint)
    assert saved["nst_stage"] == 1 and saved["global_step"] == 3 and not set(NEW_OPTIONS) & set(saved["hyper_parameters"])
    # The same run straight through, with today's code ...
    straight = StyleTransfer(**MULTISCALE)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fit(straight, steps=6, image_size=64)
    # ... and resumed from the old-format checkpoint of step 3 (mid-stage 1), through the Trainer API.
    resumed = StyleTransfer(**MULTISCALE)
    trainer = fit(resumed, steps=6, image_size=64, ckpt_path=str(old_checkpoint))
    assert trainer.global_step == 6
    assert torch.allclose(resumed.result(), straight.result(), atol=1 / 255)


def test_load_from_checkpoint_of_an_old_checkpoint_gives_its_image_without_warnings(old_checkpoint):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = StyleTransfer.load_from_checkpoint(old_checkpoint, weights_only=True)
    assert not [w for w in caught if "vgg." in str(w.message)]  # no "keys missing" warning for VGG19's weights
    saved = checkpoint(old_checkpoint)["state_dict"]
    assert torch.equal(model.image.detach(), saved["image"])
    assert model.result().shape == (1, 3, 34, 45)


def test_a_checkpoint_without_an_image_is_refused(tmp_path, old_checkpoint):
    bad = tmp_path / "bad.ckpt"
    state = checkpoint(old_checkpoint)
    del state["state_dict"]["image"]
    torch.save(state, bad)
    with pytest.raises(UserError, match="holds no image"):
        StyleTransfer.load_from_checkpoint(bad, weights_only=True)


def test_a_nan_loss_stops_before_the_optimizer_step():
    model = StyleTransfer(weights="random")
    forward = model.forward
    model.forward = lambda image=None: {**forward(image), "loss": forward(image)["loss"] * float("nan")}
    with pytest.raises(UserError, match="the loss became nan after 0 steps"):
        fit(model)
    start = load_image("builtin:tubingen", 48)
    assert torch.equal(model.image.detach(), start)  # never updated with a NaN gradient
