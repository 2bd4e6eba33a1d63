"""The page's runs without the page (``ui/runs.py``, in this process): what a finished run leaves in the
process that serves the page, which makes run after run in it."""

from __future__ import annotations

import gc
import os
import shutil
import threading

import numpy as np
import pytest
from lightning.pytorch import Trainer
from PIL import Image

from nst_lightning.model.module import StyleTransfer
from nst_lightning.ui.runner import execute
from nst_lightning.ui.runs import Runs
from nst_lightning.ui.words import describe, read_config, settings_yaml
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, make_image

# The runs' own command line beside pytest's (as ui_main filters it).
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


def kept() -> list:
    return [kept for kept in gc.get_objects() if isinstance(kept, (Trainer, StyleTransfer))]


def test_a_finished_run_leaves_no_trainer_or_module_and_runs_share_one_thread(tmp_path):
    runs = Runs(tmp_path / "runs", ["--config", DEBUG_CONFIG])
    earlier = kept()  # another test's, in this process (ui_main checks its options with a Trainer built)
    for _ in range(2):
        run = runs.fresh("builtin:tubingen", ["builtin:starry_night"], ["--trainer.max_steps", "2"])
        outcome = list(execute(run, 1))[-1]
        assert outcome.code == 0 and outcome.steps == 2
        # The Trainer, its callbacks and the module refer to each other: without a collection after the
        # run, they (and the run's VGG19) stay until the cycle collector's next full pass.
        assert not [left for left in kept() if not any(left is other for other in earlier)]
    # Every run in one thread: a thread a run left each run's freed memory in an arena of its own.
    assert [thread.name for thread in threading.enumerate() if thread.name.startswith("nst-ui")] == ["nst-ui-runs"]


def test_a_deleted_runs_served_picture_goes_with_it(tmp_path):
    runs = Runs(tmp_path / "runs", ["--config", DEBUG_CONFIG])
    run = runs.fresh("builtin:tubingen", ["builtin:starry_night"], ["--trainer.max_steps", "2"])
    assert list(execute(run, 1))[-1].code == 0
    [(name, picture, record)] = runs.earlier()
    assert name == run.directory.name and record["steps"] == 2 and picture.read_bytes() == (run.directory / "generated.png").read_bytes()
    assert picture.stat().st_nlink == 2  # a hard link: the result is not stored twice
    shutil.rmtree(run.directory)  # the operator makes room
    assert runs.earlier() == [] and not picture.exists() and runs.storage() == 0


@pytest.mark.slow
def test_a_runs_settings_file_makes_the_same_picture_with_fit_config(tmp_path):
    runs = Runs(tmp_path / "runs", ["--config", DEBUG_CONFIG])
    photo = make_image(tmp_path / "mine.png", (48, 36))
    run = runs.fresh(str(photo), ["builtin:starry_night"], ["--trainer.max_steps", "3", "--model.style_weight", "20"])
    assert list(execute(run, 1))[-1].code == 0
    text = settings_yaml(read_config(run.directory), run.directory.name, 3)
    assert str(tmp_path) not in text and "LivePreview" not in text  # nothing of where the server kept it
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.yaml").write_text(text)
    shutil.copy(photo, home / "photo.png")  # the user's own photo, by the name the file gives it
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NST_LIGHTNING_CACHE=str(tmp_path / "cache"))
    done = forked.run(["fit", "--config", "settings.yaml"], cwd=home, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [again] = list(home.rglob("generated.png"))
    first, second = (np.asarray(Image.open(p), dtype=np.int16) for p in (run.directory / "generated.png", again))
    assert first.shape == second.shape == (36, 48, 3) and np.abs(first - second).max() <= 2  # the same picture
    assert "**Painting** The Starry Night (van Gogh) · **Size** 48 px" in describe(read_config(run.directory), 3)  # in words
