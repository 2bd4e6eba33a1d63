"""configs/default.yaml (512 px: the quick method on the pixels at 500 steps), through the real CLI at
configs/debug.yaml's size and weights; and CHANGELOG.md's flags that put the earlier default.yaml and
quick.yaml back, for resuming runs made with them."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.model.options import OptimOptions
from nst_lightning.model.schedules import StepSizeFactor
from tests.helpers import CONFIGS, DEBUG_CONFIG, REPO

DEFAULT_CONFIG = str(CONFIGS / "default.yaml")
QUICK_CONFIG = str(CONFIGS / "quick.yaml")


def upgrading_flags(run_made_with: str) -> list[str]:
    """The flags CHANGELOG.md's "Upgrading" table gives for a run made with ``run_made_with`` (the start of
    its first cell, e.g. "`configs/default.yaml` before")."""
    text = (REPO / "CHANGELOG.md").read_text()
    section = text[text.index("## Upgrading"):text.index("## [Unreleased]")]
    rows = [row for row in section.splitlines() if row.startswith(f"| {run_made_with}")]
    assert len(rows) == 1, f"CHANGELOG.md's Upgrading table should have one row for {run_made_with}"
    return shlex.split(re.findall(r"`([^`]+)`", rows[0].split("|")[2])[0])


def print_config(run_cli, capsys, *args: str, config: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*args, "--print_config", config=config)
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_default_yaml_decays_the_last_third_and_writes_the_average(run_cli, run_dir):
    steps = 9
    cli = run_cli("--config", DEFAULT_CONFIG, "--config", DEBUG_CONFIG, "--trainer.max_steps", str(steps))
    optim = cli.model.optim
    assert (optim.init, optim.init_color_strength, optim.lr_schedule, optim.ema_decay) == ("painting_colors", 0.5, "linear", 0.9)
    # By hand: 0.33 of 9 steps is the last 3 (from step 6), linear from 0.02 down to 10% of it at step 9.
    factor = StepSizeFactor("linear", 0.1, 0, steps, decay_fraction=0.33)
    assert [factor(k) for k in (5, 6, 7, 9)] == pytest.approx([1.0, 1.0, 0.1 + 0.9 * 2 / 3, 0.1])
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.02 * 0.1)  # stepped after the last step
    average = cli.model.average
    assert average is not None and average.count.item() == steps
    written = torch.from_numpy(np.asarray(Image.open(run_dir / "generated.png").convert("RGB")).copy())
    expected = (average.get()[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    assert (written.int() - expected.int()).abs().max() <= 1


def test_the_upgrading_flags_put_default_yaml_back_as_it_was(run_cli, capsys):
    # The earlier default.yaml: 1000 constant Adam steps from the photo in fp32. It set none of the options
    # added since and left init at content, so every optimisation option is then the module's default,
    # which is what such a run's checkpoint holds.
    printed = print_config(run_cli, capsys, *upgrading_flags("`configs/default.yaml` before"), config=DEFAULT_CONFIG)
    assert printed["trainer"]["max_steps"] == 1000 and printed["precision_policy"] == "as_set"
    assert printed["data"]["image_size"] == 512
    for field in fields(OptimOptions):
        value = printed["model"][field.name]
        assert (tuple(value) if isinstance(value, list) else value) == field.default, field.name


def test_the_upgrading_flags_put_quick_yaml_back_as_it_was(run_cli, capsys):
    # The earlier quick.yaml: 200 constant Adam steps from the photo in fp32, the last iterate. Its runs'
    # checkpoints hold no init_color_strength or lr_decay_fraction (later options, which a resume does not
    # compare); every other optimisation option must be the module's default, as it was then.
    later = {"init_color_strength", "lr_decay_fraction"}
    printed = print_config(run_cli, capsys, *upgrading_flags("`configs/quick.yaml` before"), config=QUICK_CONFIG)
    assert printed["trainer"]["max_steps"] == 200 and printed["precision_policy"] == "as_set"
    for field in fields(OptimOptions):
        value = printed["model"][field.name]
        if field.name not in later:
            assert (tuple(value) if isinstance(value, list) else value) == field.default, field.name
    # quick.yaml on the pixels: 150 Adam steps from the photo half way to the painting's colours, style weight 10,
    # the last third decayed to 10%, averaged; a pyramid's gain is moot on the pixels, but set back all the same.
    pixels = print_config(run_cli, capsys, *upgrading_flags("`configs/quick.yaml` on the pixels"), config=QUICK_CONFIG)
    assert pixels["trainer"]["max_steps"] == 150 and pixels["model"]["ema_decay"] == 0.9
    assert {key: pixels["model"][key] for key in ("parameterisation", "pyramid_band_gain", "style_weight", "init_color_strength", "lr_floor")} == {
        "parameterisation": "pixels", "pyramid_band_gain": 1.0, "style_weight": 10.0, "init_color_strength": 0.5, "lr_floor": 0.1}
    # The lab's fourth-round quick.yaml: that one, without the average of the iterates.
    fourth = print_config(run_cli, capsys, *upgrading_flags("`configs/quick.yaml` of"), config=QUICK_CONFIG)
    assert fourth["model"]["ema_decay"] is None and fourth["trainer"]["max_steps"] == 150
    assert {**fourth["model"], "ema_decay": pixels["model"]["ema_decay"]} == pixels["model"]
