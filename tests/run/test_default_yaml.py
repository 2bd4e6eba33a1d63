"""configs/default.yaml (512 px: quick.yaml's method at 500 steps), through the real CLI at
configs/debug.yaml's size and weights; and the flags that put the earlier file back, for resuming its runs."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.model.options import OptimOptions
from nst_lightning.model.schedules import StepSizeFactor
from tests.helpers import CONFIGS, DEBUG_CONFIG

DEFAULT_CONFIG = str(CONFIGS / "default.yaml")
# The earlier default.yaml, 1000 constant Adam steps from the photo in fp32, put back over today's: to resume a
# run made with it. It set none of the options added since and left init at content, so every optimisation
# option is then the module's default, which is what such a run's checkpoint holds.
EARLIER_DEFAULT_YAML = ["--trainer.max_steps", "1000", "--model.init", "content", "--model.init_color_strength", "1",
                        "--model.lr_schedule", "constant", "--model.lr_floor", "0", "--model.lr_decay_fraction", "1",
                        "--model.ema_decay", "null", "--precision_policy", "as_set"]


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
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*EARLIER_DEFAULT_YAML, "--print_config", config=DEFAULT_CONFIG)
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_steps"] == 1000 and printed["precision_policy"] == "as_set"
    assert printed["data"]["image_size"] == 512
    for field in fields(OptimOptions):
        value = printed["model"][field.name]
        assert (tuple(value) if isinstance(value, list) else value) == field.default, field.name
