"""One real ``nst-lightning ui`` server for the ui tests: a subprocess on 127.0.0.1 at a free port,
serving ``configs/debug.yaml`` (48 px, random weights, a few steps), its runs in a temporary folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import DEBUG_CONFIG, REPO, make_image

pytest.importorskip("gradio", reason='the ui extra is not installed: pip install -e ".[ui]"')

START_S = 120.0  # torch, Lightning and Gradio's imports on two shared cores


@dataclass
class Server:
    url: str
    port: int
    runs: Path
    images: Path
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("ui")
    images = root / "images"
    images.mkdir()
    make_image(images / "photo.png", size=(48, 36), color=(200, 60, 20))
    make_image(images / "painting.png", size=(40, 40), color=(20, 60, 220))
    make_image(images / "painting2.jpg", size=(36, 48), color=(240, 200, 10))
    (images / "notes.txt").write_text("not an image\n")
    port, log = free_port(), root / "server.log"
    env = dict(os.environ, NST_LIGHTNING_CACHE=str(root / "cache"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "nst_lightning", "ui", "--config", DEBUG_CONFIG, "--port", str(port), "--runs", str(root / "runs")]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_S
    while "serving http" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the ui server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield Server(f"http://127.0.0.1:{port}/", port, root / "runs", images, log)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
