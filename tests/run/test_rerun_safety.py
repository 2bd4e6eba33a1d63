"""A result image is data: a crafted configuration in it is one line, never a traceback (and so is the same
text as a config file or as YAML text on the command line). And ``--result.filename`` (from the command
line or an image) never leaves the run directory nor replaces a file that the run did not write."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.run.entry import cli_main
from nst_lightning.run.output import embedded_config, read_config, save_image
from tests.helpers import DEBUG_CONFIG, user_error

PRECIOUS = b"an image the user keeps"


@pytest.fixture(scope="module")
def result_png(tmp_path_factory) -> tuple[Path, dict]:
    """A real result of configs/debug.yaml (4 steps, 48 px) and the configuration it carries."""
    where = tmp_path_factory.mktemp("first-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        patch.setattr(sys, "argv", ["nst_lightning"])
        cli_main(["fit", "--config", DEBUG_CONFIG, "--trainer.enable_progress_bar", "false"])
    image = where / "lightning_logs" / "debug" / "generated.png"
    return image, yaml.safe_load(read_config(image))


def craft(path: Path, result: Path, config: dict | str) -> Path:
    """``result``'s pixels saved by the program's own writer with ``config`` embedded instead of its own:
    the image a stranger could send."""
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    pixels = np.asarray(Image.open(result).convert("RGB"), dtype=np.float32) / 255
    save_image(torch.from_numpy(pixels).permute(2, 0, 1)[None], path, config=embedded_config(text))
    return path


def changed(config: dict, keys: str, value) -> dict:
    """A deep copy of ``config`` with ``value`` at the dotted ``keys``."""
    config = yaml.safe_load(yaml.safe_dump(config))
    *parents, last = keys.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


@pytest.fixture
def rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    return lambda *args: cli_main(["fit", *args])



# --- --result.filename stays inside the run and replaces only the run's own result ---


@pytest.mark.parametrize("name", ["../../precious.jpg", "ABSOLUTE"])
def test_a_result_filename_leading_out_of_the_run_is_refused_and_nothing_is_written(run_cli, tmp_path, capsys, name):
    precious = tmp_path / "precious.jpg"
    precious.write_bytes(PRECIOUS)
    name = str(precious) if name == "ABSOLUTE" else name
    line = user_error(run_cli, capsys, "--result.filename", name)
    # Before: the run trained and wrote its result over precious.jpg.
    assert line == (
        f"nst_lightning: error: --result.filename {name} leads out of the run directory lightning_logs/debug (to {precious}); "
        "the result is written inside its run: give a file name such as generated.png"
    )
    assert precious.read_bytes() == PRECIOUS
    assert not (tmp_path / "lightning_logs").exists()


def test_a_result_filename_from_an_image_cannot_leave_the_run_either(result_png, rerun, tmp_path, capsys):
    image, config = result_png
    craft(tmp_path / "shared.png", image, changed(config, "result.filename", "../../precious.jpg"))
    (tmp_path / "precious.jpg").write_bytes(PRECIOUS)
    line = user_error(rerun, capsys, "--config", "shared.png")
    assert "--result.filename ../../precious.jpg leads out of the run directory lightning_logs/debug" in line
    assert (tmp_path / "precious.jpg").read_bytes() == PRECIOUS
    assert not (tmp_path / "lightning_logs").exists()


def test_symlinks_and_files_in_the_run_directory_are_not_written_through_or_over(run_cli, run_dir, tmp_path, capsys):
    run_cli()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.jpg").write_bytes(PRECIOUS)
    (run_dir / "out").symlink_to(elsewhere)  # planted inside the run directory
    (run_dir / "notes.png").write_bytes(PRECIOUS)  # a file the run did not write
    resume = ("--ckpt_path", "last", "--trainer.max_steps", "6")
    # Before: the resumed run wrote its result through the link, over elsewhere/precious.jpg.
    line = user_error(run_cli, capsys, *resume, "--result.filename", "out/precious.jpg")
    assert f"--result.filename out/precious.jpg leads out of the run directory lightning_logs/debug (to {elsewhere / 'precious.jpg'})" in line
    # Before: replaced.
    line = user_error(run_cli, capsys, *resume, "--result.filename", "notes.png")
    assert line == (
        "nst_lightning: error: --result.filename notes.png: lightning_logs/debug/notes.png already exists and this run did "
        "not write it; give a name not yet taken (or move that file away)"
    )
    # The result's own name, now a link to a file elsewhere.
    generated = (run_dir / "generated.png").read_bytes()
    (run_dir / "generated.png").unlink()
    (run_dir / "generated.png").symlink_to(elsewhere / "precious.jpg")
    assert "--result.filename generated.png leads out of the run directory" in user_error(run_cli, capsys, *resume)
    assert (elsewhere / "precious.jpg").read_bytes() == PRECIOUS and (run_dir / "notes.png").read_bytes() == PRECIOUS
    # A fresh run into a directory that holds a result but no checkpoint: that file is not its own.
    fresh = tmp_path / "lightning_logs" / "debug" / "mine"
    fresh.mkdir()
    (fresh / "generated.png").write_bytes(PRECIOUS)
    line = user_error(run_cli, capsys, "--trainer.logger.init_args.version", "mine")
    assert "--result.filename generated.png: lightning_logs/debug/mine/generated.png already exists and this run did not write it" in line
    assert (fresh / "generated.png").read_bytes() == PRECIOUS
    # The run's own result (named in its config.yaml): its resume rewrites it.
    (run_dir / "generated.png").unlink()
    (run_dir / "generated.png").write_bytes(generated)
    run_cli(*resume)
    assert (run_dir / "generated.png").read_bytes() != generated and Image.open(run_dir / "generated.png").size == (48, 36)


# --- a crafted configuration is one line saying what is wrong ---

DEEP = "[" * 20_000  # unclosed: the parser's time grows with the square of the depth
DEEP_CLOSED = "a: " + "[" * 2_400 + "]" * 2_400  # under 5,000 values: was a RecursionError traceback
BOMB = "x0: &id001 [a, a, a, a, a, a, a, a, a]\n" + "".join(
    f"x{k}: &id{k + 1:03d} [{', '.join([f'*id{k:03d}'] * 9)}]\n" for k in range(1, 9)
)
CRAFTED = {
    "malformed": ("a: [", "is not valid YAML: did not find expected node content (line "),
    "deep": (DEEP, "nests its YAML more than 50 levels deep (this program's configs nest 5): give a config without such nesting"),
    "deep-closed": (DEEP_CLOSED, "nests its YAML more than 50 levels deep"),
    "bomb": (BOMB, "holds 490,329,064 values once its YAML aliases are expanded, more than the 5,000 a config may hold"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_configuration_in_an_image_is_one_line(result_png, rerun, tmp_path, capsys, case):
    text, said = CRAFTED[case]
    craft(tmp_path / "shared.png", result_png[0], text)
    # Before: a ParserError or RecursionError traceback, and "--config x0: &id001" for the bomb.
    line = user_error(rerun, capsys, "--config", "shared.png")
    assert line.startswith("nst_lightning: error: --config shared.png (its embedded configuration) ") and said in line
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("case", CRAFTED)
@pytest.mark.parametrize("given", ["file", "text"])
def test_the_same_texts_as_a_config_file_or_yaml_text_are_one_line(run_cli, tmp_path, capsys, case, given):
    text, said = CRAFTED[case]
    (tmp_path / "crafted.yaml").write_text(text)
    value = "crafted.yaml" if given == "file" else text
    name = "--config crafted.yaml" if given == "file" else f"--config {text.splitlines()[0][:37]}... (YAML text)"
    if case == "malformed" and given == "text":
        name = "--config a: [ (YAML text)"
    # Before: a RecursionError traceback (deep-closed), "--config x0: &id001" (the bomb as text), and
    # jsonargparse's "Problems parsing config" after the whole quadratic parse (deep).
    line = user_error(run_cli, capsys, "--config", value)
    assert line.startswith(f"nst_lightning: error: {name} ") and said in line, line
    assert not (tmp_path / "lightning_logs").exists()
