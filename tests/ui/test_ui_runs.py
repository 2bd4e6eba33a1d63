"""The page's runs without the page (``ui/runs.py``, in this process): what a finished run leaves in the
process that serves the page, which makes run after run in it."""

from __future__ import annotations

import gc
import shutil
import threading

import pytest
from lightning.pytorch import Trainer

from nst_lightning.model.module import StyleTransfer
from nst_lightning.ui.runner import execute
from nst_lightning.ui.runs import Runs
from tests.helpers import DEBUG_CONFIG

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
