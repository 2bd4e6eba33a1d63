"""Shared fixtures: the real CLI run in a temporary directory, tiny images, the shared weights."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from nst_lightning.run.entry import cli_main
from tests.helpers import DEBUG_CONFIG, shared_weights_path

# The hostile HTTP server of the download tests (``http_server``), in a module of its own.
pytest_plugins = ["tests.hostile_server"]

# One compute thread per pytest process (each worker of `pytest -n N`) and per process a test starts: the
# tests' tensors are tiny, and threads on cores that other workers or other programs share spin idle.
# Measured on two shared cores (load 10): tests/model/test_module.py took 295 s with torch's default
# threads, 12 s with one (benchmarks/tier_times.py, docs/lab/performance.md).
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
torch.set_num_threads(1)
# Ray starts its workers at niceness 15, beneath every other process. The runs of a Ray test happen in
# those workers, so beside the other pytest workers' processes (niceness 0) they got ~5% of a core
# (measured: a shot's worker 4 CPU s in 80 s), and a Ray test took minutes or timed out under
# `pytest -n`, when it takes ~25 s alone. The tests' Ray workers compete as equals (Ray reads RAY_*
# settings from the environment of the processes it starts: the raylet's).
os.environ.setdefault("RAY_worker_niceness", "0")


# `pytest -n auto` is xdist's own count, a worker a core: with the tests' processes forked
# (tests/_forked.py), two workers a core only added CPU (docs/lab/performance.md).


def pytest_collection_modifyitems(config, items):
    """The tests of an ``xdist_group`` first (the page's: one worker takes them all, the longest unit),
    then those marked ``slow`` (4 s of CPU or more), the rest in their order. Under ``pytest -n N`` the
    workers take tests in collection order, so the slowest ones, collected last (``tests/video``), used to
    start near the end and keep one worker busy for a minute while the others had finished; started
    first, they spread over the workers and the short tests fill in around them. The page's group,
    collected among the slow ones (~5 minutes of one worker), could start late and end the suite."""
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None, item.get_closest_marker("slow") is None))


@pytest.fixture
def shared_weights() -> Path:
    path = shared_weights_path()
    if path is None:
        pytest.skip("real VGG19 weights not found (set NST_LIGHTNING_WEIGHTS or provide ../shared/weights)")
    return path


@pytest.fixture(autouse=True)
def download_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test downloads into its own cache, never into the user's (~/.cache/nst_lightning);
    subprocesses inherit it through the environment."""
    path = tmp_path_factory.mktemp("download-cache")
    monkeypatch.setenv("NST_LIGHTNING_CACHE", str(path))
    return path


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run ``python -m nst_lightning fit --config configs/debug.yaml ARGS`` in-process, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])  # LightningCLI warns if argv also has args

    def run(*args: str, config: str = DEBUG_CONFIG):
        return cli_main(["fit", "--config", config, *args])

    return run


class _Parser(Exception):
    """Carries the fit command's parser out of LightningCLI's constructor once it is built."""


@pytest.fixture(scope="session")
def fit_parser():
    """The command line's parser of ``fit`` (LightningCLI's, as ``run.cli.StyleTransferCLI`` builds it),
    built once: a run builds it anew, which is most of what a run refused at parse time costs."""
    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    from nst_lightning.run.cli import TRAINER_DEFAULTS, StyleTransferCLI
    from nst_lightning.utilities.errors import program_name

    class ParserOnly(StyleTransferCLI):
        def parse_arguments(self, parser, args):  # LightningCLI has built its parser: stop before parsing
            raise _Parser(parser)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["nst_lightning"])
        try:
            ParserOnly(StyleTransfer, StyleTransferData, args=[], trainer_defaults=TRAINER_DEFAULTS, auto_configure_optimizers=False,
                       parser_kwargs={"prog": program_name(), "exit_on_error": False})
        except _Parser as built:
            return built.args[0]
    raise AssertionError("LightningCLI parsed arguments without calling parse_arguments")


@pytest.fixture
def parse_refusal(fit_parser, tmp_path, monkeypatch):
    """``parse_refusal(*args)``: the one line ``fit --config configs/debug.yaml ARGS`` is refused with as
    the command line is read (the bounds on config files and YAML values, then jsonargparse's types),
    as the CLI prints it; the tier of option refusals that needs no run. Fails if the arguments parse."""
    from argparse import ArgumentError

    from nst_lightning.run._config_limits import check_arguments
    from nst_lightning.run.entry import refusal_line
    from nst_lightning.utilities.errors import UserError

    monkeypatch.chdir(tmp_path)

    def refuse(*args: str) -> str:
        argv = ["fit", "--config", DEBUG_CONFIG, *args]
        with pytest.raises((ArgumentError, UserError)) as refused:
            check_arguments(argv)
            fit_parser.parse_args(argv)
        return refusal_line(refused.value)

    return refuse


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Where configs/debug.yaml writes its run when started in tmp_path."""
    return tmp_path / "lightning_logs" / "debug"
