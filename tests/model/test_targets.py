"""Targets as one concept (nst_lightning/model/targets.py): a kind of target can add a loss term on the
image itself, which the untiled and the tiled step both take, and which a real fit logs."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from nst_lightning import StyleTransfer, StyleTransferData
from nst_lightning.model.targets import Photos, Regions, kind_for
from tests.helpers import make_image


class Pull:
    """A term pulling the image towards ``goal``: ``weight * mean((image - goal)^2)``."""

    name = "pull_loss"

    def __init__(self, goal: torch.Tensor, weight: float) -> None:
        self.goal, self.weight = goal, weight

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.weight * (image.float() - self.goal).pow(2).mean()


class PhotosAndPull:
    """Another kind of target: a photo's, plus a ``Pull`` towards grey."""

    def compute(self, measure, datamodule, long_side):
        targets = Photos().compute(measure, datamodule, long_side)
        content = datamodule.images(long_side)[0]
        return targets._replace(terms=[Pull(torch.full_like(content, 0.5), 2.0)])


def test_a_term_adds_its_hand_computed_value_to_the_loss():
    torch.manual_seed(0)
    model = StyleTransfer(weights="random")
    content, painting, image = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 36, 36), torch.rand(1, 3, 32, 40)
    model.compute_targets(content, painting)
    plain = model(image)
    model.target_terms = (Pull(content, 3.0),)
    pulled = model(image)
    expected = 3.0 * ((image - content) ** 2).sum() / image.numel()
    assert torch.allclose(pulled["pull_loss"], expected, rtol=1e-6)
    assert torch.allclose(pulled["loss"], plain["loss"] + expected, rtol=1e-6)
    assert torch.equal(pulled["style_loss"], plain["style_loss"])


def test_the_tiled_step_takes_the_term_and_its_gradient():
    torch.manual_seed(0)
    content, painting = torch.rand(1, 3, 64, 80), torch.rand(1, 3, 64, 64)
    grads, losses = [], []
    for tile_size in (None, 32):
        model = StyleTransfer(weights="random", tile_size=tile_size)
        model.compute_targets(content, painting)
        model.target_terms = (Pull(torch.zeros_like(content), 5.0),)
        image = (content * 0.5 + 0.25).requires_grad_()
        if tile_size is None:
            loss = model(image)
            loss["loss"].backward()
        else:
            assert len(model.tiled_loss.tiles(64, 80)) > 1
            loss = model.tiled_loss.losses_and_backward(
                image, model.content_targets, model.style_targets, torch.Tensor.backward, terms=model.target_terms
            )
        grads.append(image.grad)
        losses.append(loss)
    assert torch.allclose(losses[0]["pull_loss"], losses[1]["pull_loss"]) and torch.allclose(losses[0]["loss"], losses[1]["loss"], rtol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6 * grads[0].abs().max().item())


def test_a_kind_set_on_the_module_is_used_by_a_real_fit_and_its_term_logged(tmp_path):
    photo, painting = make_image(tmp_path / "photo.png"), make_image(tmp_path / "painting.png", color=(20, 90, 200))
    data = StyleTransferData(str(photo), str(painting), image_size=40)
    assert isinstance(kind_for(data), Photos)
    model = StyleTransfer(weights="random")
    model.target_kind = PhotosAndPull()
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(model, datamodule=data)
    assert float(trainer.callback_metrics["train/pull_loss"]) > 0
    assert len(model.target_terms) == 1
    assert isinstance(kind_for(StyleTransferData(str(photo), regions=[{"mask": str(photo), "style": str(painting)}])), Regions)
