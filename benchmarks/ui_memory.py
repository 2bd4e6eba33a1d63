"""The ``ui`` server's memory over many runs: starts the real server (``nst-lightning ui``, configs/debug.yaml:
48 px, untrained VGG19) as a subprocess on 127.0.0.1, drives ``--runs`` runs through ``gradio_client``
(each from a new client, as visitors come: a photo and a painting uploaded, ``--steps`` steps), and prints the
server's resident memory (VmRSS, /proc) after runs 1, 5, 10, 20, ... and the ratio of the last to run 10.

    python benchmarks/ui_memory.py --runs 50 --steps 2

The server is what runs the page's runs in threads of its own process, so its RSS is what grows if a run
leaves something behind (a Trainer, a module, a preview, Gradio's per-session state).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
START_S = 180.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc: this script needs Linux")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory(prefix="ui_memory_") as root:
        root_path = Path(root)
        photo, painting = root_path / "photo.png", root_path / "painting.png"
        Image.new("RGB", (48, 36), (200, 60, 20)).save(photo)
        Image.new("RGB", (40, 40), (20, 60, 220)).save(painting)
        port, log = free_port(), root_path / "server.log"
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(root_path / "gradio"),
                   NST_LIGHTNING_CACHE=str(root_path / "cache"))
        command = [sys.executable, "-m", "nst_lightning", "ui", "--config", str(REPO / "configs" / "debug.yaml"),
                   "--port", str(port), "--runs", str(root_path / "runs")]
        with open(log, "w") as out:
            server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_S
            while "serving http" not in log.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(f"server pid {server.pid}, started: {rss_mb(server.pid):.0f} MB")
            print("| runs | server RSS MB | seconds |")
            print("| --- | --- | --- |")
            marks = {1, 5} | set(range(10, args.runs + 1, 10)) | {args.runs}
            figures, started = {}, time.monotonic()
            for index in range(1, args.runs + 1):
                client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False,
                                download_files=str(root_path / "downloads"))
                result = client.predict(handle_file(photo), [handle_file(painting)], args.size, args.steps, 10.0, api_name="/stylize")
                if f"Done: {args.steps} steps" not in result[2]:
                    print(f"run {index} did not finish: {result[2]}", file=sys.stderr)
                    return 1
                client.close()
                if index in marks:
                    figures[index] = rss_mb(server.pid)
                    print(f"| {index} | {figures[index]:.0f} | {time.monotonic() - started:.0f} |", flush=True)
            if 10 in figures:
                print(f"run {args.runs} / run 10: {figures[args.runs] / figures[10]:.3f}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
