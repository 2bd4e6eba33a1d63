"""Shared fixtures: the real CLI run in a temporary directory, tiny images, the shared weights."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nst_lightning.run.entry import cli_main
from tests.helpers import DEBUG_CONFIG, shared_weights_path

# The hostile HTTP server of the download tests (``http_server``), in a module of its own.
pytest_plugins = ["tests.hostile_server"]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N`: one compute thread per worker and per process a test starts, so that N
    # workers share the cores instead of each running as many threads as there are cores.
    import torch

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (15-75 s each here) first, the rest in their order. Under ``pytest -n N``
    the workers take tests in collection order, so the slowest ones, collected last (``tests/video``),
    used to start near the end and keep one worker busy for a minute while the others had finished;
    started first, they spread over the workers and the short tests fill in around them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """Where configs/debug.yaml writes its run when started in tmp_path."""
    return tmp_path / "lightning_logs" / "debug"
