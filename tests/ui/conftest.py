"""One real ``nst-lightning ui`` server for the ui tests: a process of its own on 127.0.0.1 at a free port,
serving ``configs/debug.yaml`` (48 px, random weights, a few steps), its runs in a temporary folder
(and Gradio's upload folder in it, ``.gradio``). ``start_server`` starts another one, with other options."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests._forked import Forked, nst_lightning
from tests.helpers import DEBUG_CONFIG, REPO, make_image

# Looked up, not imported: every pytest worker collects this folder, and Gradio's import costs ~2 CPU s
# in each of them; only the server's process and the tests that need it import it.
if importlib.util.find_spec("gradio") is None:
    pytest.skip('the ui extra is not installed: pip install -e ".[ui]"', allow_module_level=True)

# A hang detector, not a speed bound: torch, Lightning and Gradio's imports took ~10 s of CPU in a
# process of its own, and under `pytest -n 4` on two cores, beside Ray's workers, a server once printed
# nothing within 120 s.
START_S = 300.0


@dataclass
class Server:
    url: str
    port: int
    runs: Path
    images: Path
    log: Path
    process: Forked = field(repr=False)


def client(server: Server, downloads: Path) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False, analytics_enabled=False, download_files=str(downloads))


def run_folder(outputs: tuple) -> Path:
    """The run directory the page names in its last message ("Run folder: `...`")."""
    return Path(outputs[4].split("`")[1])


def run_directories(runs: Path) -> list[str]:
    """The runs' directories (not the server's own dot-named folders)."""
    return sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) if runs.is_dir() else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_images(images: Path) -> Path:
    images.mkdir(exist_ok=True)
    make_image(images / "photo.png", size=(48, 36), color=(200, 60, 20))
    make_image(images / "painting.png", size=(40, 40), color=(20, 60, 220))
    make_image(images / "painting2.jpg", size=(36, 48), color=(240, 200, 10))
    (images / "notes.txt").write_text("not an image\n")
    return images


def start_server(root: Path, runs: Path, images: Path, *options: str) -> Server:
    """``nst-lightning ui`` in a process of its own, serving runs in ``runs``; its output in ``root/server-PORT.log``."""
    port = free_port()
    log = root / f"server-{port}.log"
    env = dict(os.environ, NST_LIGHTNING_CACHE=str(root / "cache"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_TEMP_DIR", None)  # the server's default: its runs folder's .gradio
    command = ["ui", "--config", DEBUG_CONFIG, "--port", str(port), "--runs", str(runs), *options]
    with open(log, "w") as out:  # forked from a parent that has imported torch and Lightning (tests/_forked.py)
        process = nst_lightning(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_S
    while "serving http" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the ui server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return Server(f"http://127.0.0.1:{port}/", port, runs, images, log, process)


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    started = start_server(root, root / "runs", make_images(root / "images"))
    yield started
    stop_server(started)
