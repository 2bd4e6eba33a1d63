"""StyleTransfer's options: flat for users and checkpoints, grouped inside (nst_lightning/model/options.py)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from nst_lightning import StyleTransfer, UserError
from nst_lightning.model.options import GROUPS, MAY_CHANGE_ON_RESUME, ComputeOptions, LossOptions, OptimOptions, grouped

SIGNATURE = {name: p.default for name, p in inspect.signature(StyleTransfer.__init__).parameters.items() if name != "self"}


def _comparable(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def test_the_signature_is_exactly_the_union_of_the_groups_with_the_same_defaults():
    fields = [field for group in GROUPS for field in dataclasses.fields(group)]
    assert len(fields) == len({field.name for field in fields}), "each option in exactly one group"
    assert {field.name for field in fields} == set(SIGNATURE)
    for field in fields:
        assert _comparable(field.default) == _comparable(SIGNATURE[field.name]), field.name


def test_checkpoints_keep_the_flat_hyperparameters_and_the_groups_are_built_from_them():
    model = StyleTransfer(weights="random", lr=0.05, tile_size=64, preserve_colors="luminance", stage_steps=[3])
    assert set(model.hparams) == set(SIGNATURE)
    assert (model.optim.lr, model.compute.tile_size, model.control.preserve_colors, model.optim.stages) == (0.05, 64, "luminance", [3])
    assert grouped(model.hparams) == (model.loss_options, model.optim, model.compute, model.control)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.optim.lr = 1.0


def test_what_a_resume_may_change_is_the_compute_group():
    assert MAY_CHANGE_ON_RESUME == ("memory_format", "activation_checkpointing", "tile_size", "max_memory_gb", "check_memory", "sync_every")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LossOptions(content_layers=(), style_layers=()), "content_layers and style_layers are both empty"),
        (lambda: LossOptions(style_layer_weights=(1.0, 2.0)), "style_layer_weights has 2 values for 5 style layers"),
        (lambda: OptimOptions(init="image"), "init image needs init_image PATH"),
        (lambda: OptimOptions(init_image="a.png"), "init_image is set but init is content"),
        (lambda: ComputeOptions(tile_size=64, max_memory_gb=1.0), "tile_size and max_memory_gb are both set"),
    ],
)
def test_each_group_checks_its_own_fields(make, message):
    with pytest.raises(UserError) as err:
        make()
    assert message in str(err.value)
