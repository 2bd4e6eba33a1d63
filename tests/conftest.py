"""Shared fixtures: the real CLI run in a temporary directory, tiny images, the shared weights."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from nst_lightning.cli import cli_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEBUG_CONFIG = str(CONFIGS / "debug.yaml")


def shared_weights_path() -> Path | None:
    """Real ImageNet VGG19 weights for quality tests: $NST_LIGHTNING_WEIGHTS, else ../shared/weights."""
    candidates = [os.environ.get("NST_LIGHTNING_WEIGHTS"), REPO.parent / "shared/weights/vgg19_features_tvnorm.pth"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture
def shared_weights() -> Path:
    path = shared_weights_path()
    if path is None:
        pytest.skip("real VGG19 weights not found (set NST_LIGHTNING_WEIGHTS or provide ../shared/weights)")
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


def make_image(path: Path, size=(40, 30), color=(200, 60, 20), mode: str = "RGB", **save_kwargs) -> Path:
    """A small test image with a gradient so that its Gram matrices are not degenerate."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        for y in range(size[1]):
            image.putpixel((x, y), ((color[0] + 5 * x) % 256, (color[1] + 7 * y) % 256, color[2]))
    image.convert(mode).save(path, **save_kwargs)
    return path


@pytest.fixture
def http_server(tmp_path):
    """Serve files from tmp_path/www on 127.0.0.1 during the test; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
