"""The ui command's options, and its line when Gradio is not installed (in-process, no server)."""

from __future__ import annotations

import sys

import pytest

from nst_lightning.ui.cli import INSTALL, parse, ui_main
from nst_lightning.utilities.errors import UserError


def test_without_gradio_it_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    assert ui_main(["--config", "configs/debug.yaml"], "nst-lightning") == 2
    assert capsys.readouterr().err == f"nst_lightning: error: the ui command needs Gradio, the ui extra: {INSTALL}\n"


def test_fit_options_pass_through_as_defaults():
    options = parse(["--config", "configs/debug.yaml", "--model.style_weight", "3", "--auth", "me:se:cret"], "nst-lightning")
    assert options.fit_args == ["--config", "configs/debug.yaml", "--model.style_weight", "3"]
    assert options.auth == ("me", "se:cret") and options.host == "127.0.0.1"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--trainer.logger.init_args.version", "x"], "set by the page for each run"),
        (["--ckpt_path", "last"], "set by the page for each run"),
        (["--contents", "photos/"], "not an option of ui"),
        (["--auth", "nopassword"], "USER:PASSWORD"),
        (["--port", "99999"], "1 to 65535"),
        (["--max-size", "0"], "--max-size 0: give a whole number above 0"),
        (["--max-steps", "1.5"], "--max-steps 1.5: give a whole number above 0"),
        (["--max-storage-gb", "lots"], "--max-storage-gb lots: give a number above 0"),
    ],
)
def test_wrong_options_are_one_line(args, words, capsys):
    with pytest.raises(UserError, match=words):
        parse(args, "nst-lightning")
    assert ui_main(args, "nst-lightning") == 2
    err = capsys.readouterr().err
    assert err.startswith("nst_lightning: error: ") and err.count("\n") == 1 and words in err


def test_a_wrong_default_is_refused_before_serving(capsys):
    assert ui_main(["--config", "configs/debug.yaml", "--model.style_weight", "-1"], "nst-lightning") == 2
    err = capsys.readouterr().err
    assert err.startswith("nst_lightning: error: ") and "style_weight" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "limits, words",
    [
        (["--max-size", "32"], "--data.image_size 48: over this page's limit of 32 px"),
        (["--max-steps", "3"], "--trainer.max_steps 4: over this page's limit of 3 steps"),
    ],
)
def test_defaults_over_the_limits_are_refused_before_serving(limits, words, capsys):
    assert ui_main(["--config", "configs/debug.yaml", *limits], "nst-lightning") == 2
    err = capsys.readouterr().err
    assert err.startswith("nst_lightning: error: the page's defaults are over its limits: ") and words in err and err.count("\n") == 1
