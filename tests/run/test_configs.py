"""The files in configs/: each says whether it is a base config or an overlay, pins no accelerator, and
names its runs in one line that the real parser merges over the CLI's TensorBoard logger."""

from __future__ import annotations

import re

import pytest
import yaml

from nst_lightning.run.entry import cli_main
from tests.helpers import CONFIGS

FILES = sorted(CONFIGS.glob("*.yaml"))


def printed_config(capsys, *configs) -> dict:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *(arg for path in configs for arg in ("--config", str(path))), "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_a_config_says_what_it_is_pins_no_accelerator_and_names_its_runs(path, capsys):
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith(("# Base config", "# Overlay: layer over a base config, e.g. --config configs/")), first
    # An overlay as its first line says to use it: over a base config (the one it names).
    under = [CONFIGS / re.search(r"--config configs/(\w+\.yaml)", first).group(1)] if first.startswith("# Overlay") else []
    config = printed_config(capsys, *under, path)
    logger = config["trainer"]["logger"]
    assert logger["class_path"] == "lightning.pytorch.loggers.TensorBoardLogger"
    assert logger["init_args"]["name"] == path.stem and logger["init_args"]["save_dir"] == "lightning_logs"
    assert logger["init_args"]["default_hp_metric"] is False
    # The tests' config keeps one fixed directory and the CPU; every other one a new version each run, on a GPU if any.
    debug = path.stem == "debug"
    assert logger["init_args"]["version"] == ("" if debug else None)
    assert config["trainer"]["accelerator"] == ("cpu" if debug else "auto")
    assert "accelerator" not in text or debug or "--trainer.accelerator cpu" in text
    assert "class_path" not in text  # one line names the run; the logger itself is the CLI's
    assert not re.search(r"issue \d|round\b|20\d\d-\d\d", text), "history belongs in CHANGELOG.md"


def test_the_gpu_overlay_reads_the_host_every_50_steps_in_bf16_where_native(capsys):
    config = printed_config(capsys, CONFIGS / "default.yaml", CONFIGS / "gpu.yaml")
    assert config["precision_policy"] == "native_bf16" and config["model"]["sync_every"] == 50
    assert config["trainer"]["log_every_n_steps"] == 50 and config["image_logger"]["every_n_steps"] == 100
    assert config["data"]["image_size"] == 512  # the base config's picture; the overlay only how it runs
    assert "--batch_size" in (CONFIGS / "gpu.yaml").read_text()  # photos together: batch's option, not a fit option


@pytest.mark.parametrize("name", ["sliced_wasserstein", "nearest_neighbour"])
def test_the_page_gives_each_style_loss_what_its_config_sets(name, capsys):
    # The page's strength is on Gram's scale: at Gram's 10, the weight each loss's weight was chosen against, it
    # must give the loss its config's weight and options, or the page and the configs would paint differently.
    from nst_lightning.ui.controls import METHOD, STYLE_LOSSES, options

    base, config = printed_config(capsys, CONFIGS / "quick.yaml"), printed_config(capsys, CONFIGS / "quick.yaml", CONFIGS / f"{name}.yaml")
    args = options(256, 150, 10.0, 1.0, "none", None, None, name, 0, "", 0)
    given = dict(zip(args[::2], args[1::2]))
    assert float(given["--model.style_weight"]) == config["model"]["style_weight"] and given["--model.style_loss"] == name
    own = dict(zip(STYLE_LOSSES[name].options[::2], STYLE_LOSSES[name].options[1::2]))
    changed = {key for key in config["model"] if config["model"][key] != base["model"][key]} - {"style_loss", "style_weight"}
    assert {key: yaml.safe_load(value) for key, value in own.items()} == {key: config["model"][key.removeprefix("--model.")] for key in own}
    # What the overlay pins of the pixel method it was tuned with is what the page paints with anyway (METHOD).
    method = {key.removeprefix("--model."): yaml.safe_load(value) for key, value in zip(METHOD[::2], METHOD[1::2])}
    pinned = {key for key in changed if key in method and method[key] == config["model"][key]}
    assert {key.removeprefix("--model.") for key in own} == changed - pinned
