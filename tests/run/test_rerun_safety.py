"""A result image is data: ``fit --config generated.png`` runs only the picture it describes, writes only
inside its run, and a crafted configuration in it is one line, never a traceback, an import or a call.
And ``--result.filename`` (from the command line or an image) never leaves the run directory nor
replaces a file that the run did not write."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.outputs.results import embedded_config, read_config, save_image
from nst_lightning.run.entry import cli_main
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, user_error

PLANTED = "planted_marker"  # a module whose import leaves a file: proof that it was (not) imported
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


def plant(directory: Path, marker: Path) -> Path:
    directory.mkdir()
    (directory / f"{PLANTED}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Nope:\n    pass\n")
    return directory


@pytest.fixture
def rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    return lambda *args: cli_main(["fit", *args])


def fit_process(cwd: Path, *args: str, plant_dir: Path | None = None) -> subprocess.CompletedProcess:
    path = [str(plant_dir)] if plant_dir else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*path, str(REPO), os.environ.get("PYTHONPATH", "")]))
    return forked.run(["fit", *args], cwd=cwd, env=env, timeout=300)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("nst_lightning")]


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


# --- an image's configuration names no code ---


@pytest.mark.slow
def test_a_class_path_in_an_image_is_refused_before_its_module_is_imported(result_png, tmp_path):
    image, config = result_png
    marker = tmp_path / "imported.txt"
    planted = plant(tmp_path / "plant", marker)
    craft(tmp_path / "shared.png", image, changed(config, "trainer.callbacks", [{"class_path": f"{PLANTED}.Nope"}]))
    done = fit_process(tmp_path, "--config", "shared.png", plant_dir=planted)
    # Before: jsonargparse imported the module (its side effects ran), then refused the class.
    assert not marker.exists()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert error_lines(done) == [
        "nst_lightning: error: --config shared.png: its embedded trainer.callbacks is a list with class_path "
        f"'{PLANTED}.Nope', where only null is allowed; a result image is data: it may set the picture's options as plain "
        "values only, no class, callable or import path (to run what a config names, give a config.yaml you have read)"
    ]
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_a_callback_calling_a_function_from_an_image_is_refused_and_never_called(result_png, tmp_path):
    image, config = result_png
    callback = {"class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {"on_fit_start": "builtins.print"}}
    craft(tmp_path / "shared.png", image, changed(config, "trainer.callbacks", [callback]))
    done = fit_process(tmp_path, "--config", "shared.png")
    # Before: exit 0, print(trainer, module) called at the start of the fit.
    assert "Trainer object at" not in done.stdout + done.stderr
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(error_lines(done)) == 1 and "its embedded trainer.callbacks is a list with class_path 'lightning.pytorch" in error_lines(done)[0]
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "keys, value, said",
    [
        ("trainer.logger.class_path", f"{PLANTED}.Nope",
         f"trainer.logger.class_path is '{PLANTED}.Nope', where only lightning.pytorch.loggers.TensorBoardLogger is allowed"),
        ("trainer.profiler", f"{PLANTED}.Nope", f"trainer.profiler is '{PLANTED}.Nope', where only null is allowed"),
        ("trainer.strategy", f"{PLANTED}.Nope", f"trainer.strategy is '{PLANTED}.Nope', not a plain name"),
        ("trainer.plugins", [{"class_path": f"{PLANTED}.Nope"}], f"trainer.plugins is a list with class_path '{PLANTED}.Nope'"),
        ("model.weights", {"class_path": f"{PLANTED}.Nope"}, f"model.weights is a mapping with class_path '{PLANTED}.Nope', not a plain value"),
        ("data.regions", [f"{PLANTED}.Nope"], f"data.regions.0 is '{PLANTED}.Nope', not a mapping of options"),
        ("data.regions", [{"class_path": f"{PLANTED}.Nope"}], "data.regions.0.class_path is not an option a result image may set"),
        ("model", "planted.yaml", "model is 'planted.yaml', not a mapping of options"),  # a section read from a file
        ("trainer.logger.init_args.version", "../../elsewhere", "trainer.logger.init_args.version is '../../elsewhere', not a plain name"),
        ("print_config", True, "print_config is not an option a result image may set"),
        ("trainer.max_time", {"class_path": f"{PLANTED}.Nope"}, "trainer.max_time is a mapping with class_path"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_anything_but_the_pictures_plain_options_is_refused_naming_the_key(result_png, rerun, tmp_path, capsys, monkeypatch, keys, value, said):
    image, config = result_png
    marker = tmp_path / "imported.txt"
    monkeypatch.syspath_prepend(str(plant(tmp_path / "plant", marker)))
    monkeypatch.delitem(sys.modules, PLANTED, raising=False)  # each case imports it afresh, or not at all
    (tmp_path / "planted.yaml").write_text(f"weights:\n  class_path: {PLANTED}.Nope\n")
    craft(tmp_path / "shared.png", image, changed(config, keys, value))
    try:
        line = user_error(rerun, capsys, "--config", "shared.png")
    finally:  # before: the logger's class_path imported the module, the strategy was a traceback
        assert not marker.exists() and PLANTED not in sys.modules
    assert f"nst_lightning: error: --config shared.png: its embedded {said}" in line
    assert not (tmp_path / "lightning_logs").exists()


def test_an_image_does_not_choose_where_outside_this_directory_its_run_writes(result_png, rerun, tmp_path, capsys, monkeypatch):
    image, config = result_png
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for save_dir in (str(tmp_path / "elsewhere"), "../elsewhere"):
        craft(tmp_path / "here" / "shared.png", image, changed(config, "trainer.logger.init_args.save_dir", save_dir))
        # Before: the run was written there (a directory made anywhere the user can write).
        line = user_error(rerun, capsys, "--config", "shared.png")
        assert line == (
            f"nst_lightning: error: --config shared.png: its embedded trainer.logger.init_args.save_dir is {save_dir!r}, "
            "not a directory below this one; to rerun it, say where: --trainer.logger.init_args.save_dir DIR after the image"
        )
        assert not (tmp_path / "elsewhere").exists()
    craft(tmp_path / "here" / "shared.png", image, changed(config, "trainer.default_root_dir", "/"))
    assert "its embedded trainer.default_root_dir is '/', not a directory below this one" in user_error(rerun, capsys, "--config", "shared.png")
    # Placed by the command line: it runs there.
    craft(tmp_path / "here" / "shared.png", image, changed(config, "trainer.logger.init_args.save_dir", "/elsewhere"))
    rerun("--config", "shared.png", "--trainer.logger.init_args.save_dir", "runs", "--trainer.enable_progress_bar", "false")
    assert (tmp_path / "here" / "runs" / "debug" / "generated.png").is_file()


@pytest.mark.slow
def test_a_result_image_reruns_saying_what_it_runs(result_png, tmp_path):
    image, config = result_png
    craft(tmp_path / "shared.png", image, changed(config, "checkpoint.dirpath", "elsewhere"))
    done = fit_process(tmp_path, "--config", "shared.png", "--trainer.enable_progress_bar", "false")
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    said = [line for line in output.splitlines() if "rerunning" in line]
    assert said == [
        "--config shared.png: rerunning its run (content builtin:tubingen, style builtin:starry_night, 48 px, 4 steps, seed 0) "
        "into lightning_logs/debug; options given after it apply on top"
    ]
    # Before: no such line, and LightningCLI's warning about args printed the whole configuration.
    assert "args parameter is intended" not in output and "lbfgs_history" not in output
    # Its checkpoints in its own directory, not where the image said.
    assert (tmp_path / "lightning_logs" / "debug" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "elsewhere").exists()


def _plain_type(hint) -> bool:
    """A type jsonargparse reads as a value (never as a class to import): numbers, strings, paths,
    durations, literals, and lists, unions and string-keyed dicts of them."""
    import datetime

    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, list, dict, tuple) or str(origin) == "<class 'types.UnionType'>":
        return all(_plain_type(arg) for arg in typing.get_args(hint))
    return isinstance(hint, type) and issubclass(hint, (str, int, float, bool, type(None), os.PathLike, datetime.timedelta))


def test_the_sections_an_image_may_set_are_the_parsers_with_plain_types_only():
    """The allow-list names each section's options from the project's classes: they must be the
    parser's options, and each must read its value as a value (a class-typed option would import)."""
    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    from nst_lightning.run._picture_options import PICTURE_OPTIONS_BY_SECTION
    from nst_lightning.run.cli import TRAINER_DEFAULTS, StyleTransferCLI

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["nst_lightning"])
        cli = StyleTransferCLI(
            StyleTransfer, StyleTransferData, run=False, args=["--config", DEBUG_CONFIG], trainer_defaults=TRAINER_DEFAULTS,
            auto_configure_optimizers=False,
        )
    actions = {a.dest: getattr(a, "_typehint", None) for a in cli.parser._actions if not a.dest.endswith(".help")}
    for section, allowed in PICTURE_OPTIONS_BY_SECTION.items():
        options = {dest.split(".", 1)[1]: hint for dest, hint in actions.items() if dest.startswith(section + ".")}
        assert set(allowed) == set(options), section
        class_typed = {name for name, hint in options.items() if not _plain_type(hint)}
        assert class_typed == ({"regions"} if section == "data" else set()), section


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
