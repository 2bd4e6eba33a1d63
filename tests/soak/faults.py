"""The soak's added faults (``tests/soak/soak.py`` runs them): locks that cannot be read, a flaky download
server on 127.0.0.1, and batches whose output disk fills up while they keep their books.

- ``plant_lock``: before an attempt, an empty or garbage ``run.lock`` (what an older version left after
  a full disk or a kill between creating and writing it), either fresh (the attempt must be refused in
  one line saying how to remove it; the soak then removes it, as the line says) or older than the
  stale time (the attempt must take it over and run).
- ``FlakyServer``: serves the built-in paintings, each URL failing its first 0-2 requests in one of
  several ways (HTTP 500, a connection closed before any answer, a body cut short of its declared
  length, a body cut short with no length declared); every failure must be one line (exit 2), the
  next attempt must download again (nothing bad cached), and the run must finish once it recovers.
- ``soak_batch``: a ``batch`` of 2 photos x 1-2 paintings into a small tmpfs of its own (root on
  Linux) that fills up during the jobs and their books (``job.json``, ``batch.log``, ``summary.csv``,
  the contact sheet): the batch must stop in one line, with no traceback; the disk is then enlarged,
  as a user would free space, and the same command rerun until every job is done, once each.

Also the tmpfs helpers and ``check``, what every finished single run must satisfy.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "nst_lightning" / "assets"
LOCK_NAME = "run.lock"
STALE_AFTER_S = 300  # run_lock.STALE_AFTER_S
FAILURES = ("http-500", "closed-before-answer", "cut-short-with-length", "cut-short-without-length")
GARBAGE = (b"", b"\x00" * 7, b'{"host": "soak", "pid": "not a pid"}', b"\xff\xfe garbage \x89PNG")


def environment(cache: Path) -> dict[str, str]:
    """The attempts' environment: this checkout first on the path, downloads cached in ``cache``."""
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), NST_LIGHTNING_CACHE=str(cache))


# ---- a finished run, and small disks ----------------------------------------------------------------


def check(run_dir: Path, run: Any) -> list[str]:
    """What is wrong with a finished run's files (empty: nothing)."""
    problems = []
    try:
        with Image.open(run_dir / "generated.png") as image:
            image.load()  # decodes every pixel: a truncated file fails here
            size = image.size
        if max(size) != run.image_size:
            problems.append(f"generated.png is {size[0]}x{size[1]}, long side not {run.image_size}")
    except Exception as err:  # noqa: BLE001 - any failure to decode is the finding
        problems.append(f"generated.png does not decode: {type(err).__name__}: {err}")
        size = None
    for path in sorted((run_dir / "checkpoints").glob("*.ckpt")):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            problems.append(f"{path.name} does not load: {type(err).__name__}")
            continue
        if path.name == "last.ckpt":
            if checkpoint["global_step"] != run.max_steps:
                problems.append(f"last.ckpt is at step {checkpoint['global_step']}, not {run.max_steps}")
            image = checkpoint["state_dict"]["image"]
            if size is not None and tuple(image.shape[-2:]) != (size[1], size[0]):
                problems.append(f"last.ckpt's image is {tuple(image.shape[-2:])}, generated.png {size}")
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        problems.append("no last.ckpt")
    if (run_dir / "run.lock").exists():
        problems.append("run.lock left behind")
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".") and p.is_file()]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    return problems


def mount_tmpfs(path: Path, kilobytes: int, remount: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    options = ("remount," if remount else "") + f"size={kilobytes}k"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


def can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


# ---- locks that cannot be read ---------------------------------------------------------------------


def plant_lock(run_dir: Path, rng: random.Random) -> str:
    """Write an unreadable lock into ``run_dir``; returns ``"fresh"`` or ``"stale"``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_bytes(rng.choice(GARBAGE))
    if rng.random() < 0.5:
        return "fresh"
    then = time.time() - STALE_AFTER_S - rng.uniform(1, 3600)
    os.utime(run_dir / LOCK_NAME, (then, then))
    return "stale"


def judge_planted_lock(kind: str, code: int, stderr: str, run_dir: Path) -> list[str]:
    """What is wrong with how an attempt met a planted lock (empty: nothing). A fresh one must be
    refused in one line naming the way out, and is then removed as that line says."""
    last = (stderr.strip().splitlines() or [""])[-1]
    if kind == "stale":
        return [f"a stale unreadable lock was not taken over: exit {code}, {last}"] if "cannot be read" in last else []
    problems = []
    if code != 2 or "cannot be read" not in last or f"(rm {Path(run_dir.parent.name) / run_dir.name / LOCK_NAME})" not in last:
        problems.append(f"a fresh unreadable lock gave exit {code}: {last}")
    if "Traceback" in stderr:
        problems.append("an unreadable lock printed a traceback")
    (run_dir / LOCK_NAME).unlink(missing_ok=True)  # as the line says, when no run is using the directory
    return problems


# ---- a flaky download server -----------------------------------------------------------------------


class FlakyServer:
    """The built-in paintings at ``/<run>/<name>.jpg`` on 127.0.0.1; each URL's first requests fail."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.plans: dict[str, list[str]] = {}  # per URL path: the failures still to come, in order
        self.failures: dict[str, int] = {}  # per URL path: the failures served
        self.served: dict[str, int] = {name: 0 for name in ("ok", *FAILURES)}
        handler = functools.partial(_FlakyHandler, self)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="soak-flaky-server", daemon=True).start()

    def url(self, run: str, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{run}/{name}.jpg"

    def next_answer(self, path: str) -> str:
        with self.lock:
            if path not in self.plans:
                self.plans[path] = [self.rng.choice(FAILURES) for _ in range(self.rng.randint(0, 2))]
            answer = self.plans[path].pop(0) if self.plans[path] else "ok"
            self.served[answer] += 1
            self.failures[path] = self.failures.get(path, 0) + (answer != "ok")
            return answer

    def failures_served(self, run: str) -> int:
        """How many failed answers the URLs of ``run`` were given: a run may fail that often, no more."""
        with self.lock:
            return sum(n for path, n in self.failures.items() if path.startswith(f"/{run}/"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, flaky: FlakyServer, *args: Any, **kwargs: Any) -> None:
        self.flaky = flaky
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1].removesuffix(".jpg")
        path = ASSETS / f"{name}.jpg"
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        answer = self.flaky.next_answer(self.path)
        if answer == "http-500":
            self.send_error(500, "soak: a flaky server")
            return
        if answer == "closed-before-answer":  # a reset, as a crashing server or a proxy gives
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if answer != "cut-short-without-length":
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body if answer == "ok" else body[: len(body) // 2])
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


DOWNLOAD_FAILED = ("could not download", "download of", "did not return an image", "truncated", "cannot be decoded", "is not a readable image")


def is_download_failure(code: int, stderr: str) -> bool:
    last = (stderr.strip().splitlines() or [""])[-1]
    return code == 2 and "--data.style" in last and any(words in last for words in DOWNLOAD_FAILED)


# ---- batches on a disk that fills up ---------------------------------------------------------------


def soak_batch(cwd: Path, rng: random.Random, mount: Callable[[Path, int, bool], bool], full_disk: bool) -> dict[str, Any]:
    """One batch, rerun until done; on a small tmpfs that fills up when ``full_disk``. Returns what
    happened and the problems found."""
    out = cwd / "styled"
    styles = rng.sample(["builtin:starry_night", "builtin:shipwreck", "builtin:the_scream"], rng.choice([1, 2]))
    photos = cwd / "photos"
    photos.mkdir(parents=True)
    for k, color in enumerate([(200, 60, 20), (20, 160, 60)]):
        Image.new("RGB", (40 + 8 * k, 30), color).save(photos / f"p{k}.png")
    max_steps = rng.randint(4, 16)
    command = [
        sys.executable, "-m", "nst_lightning", "batch", "--config", str(REPO / "configs" / "debug.yaml"),
        "--contents", str(photos), "--styles", "[" + ",".join(styles) + "]", "--out", str(out),
        "--trainer.max_steps", str(max_steps), "--checkpoint.every_n_train_steps", str(rng.randint(1, 4)),
    ]
    jobs = 2 * len(styles)
    report: dict[str, Any] = {"jobs": jobs, "max_steps": max_steps, "attempts": 0, "disk_full": [], "problems": []}
    mounted = full_disk and mount(out, rng.randint(150, 450), False)
    try:
        while report["attempts"] < 8:
            report["attempts"] += 1
            done = subprocess.run(command, cwd=cwd, env=environment(cwd / "cache"), capture_output=True, text=True, timeout=900)
            if "Traceback" in done.stderr:
                report["problems"].append(f"attempt {report['attempts']} printed a traceback: {done.stderr.strip().splitlines()[-1:]}")
            if done.returncode == 0:
                break
            last = (done.stderr.strip().splitlines() or [""])[-1]
            if mounted and ("could not write" in done.stderr or "No space left" in done.stderr):
                report["disk_full"].append(last[:160])
                mount(out, 1024 * 1024, True)  # space freed: rerun the same command
                mounted = False
                continue
            report["problems"].append(f"attempt {report['attempts']} exited {done.returncode}: {last[:300]}")
            break
        report["problems"] += check_batch(out, jobs, max_steps)
    finally:
        if full_disk:
            subprocess.run(["umount", str(out)], capture_output=True)
    return report


def check_batch(out: Path, jobs: int, max_steps: int) -> list[str]:
    """What is wrong with a finished batch's files (empty: nothing)."""
    problems = []
    try:
        with open(out / "summary.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error) as err:
        return [f"summary.csv cannot be read: {err}"]
    if len(rows) != jobs or any(row.get("status") != "done" for row in rows):
        problems.append(f"summary.csv: {[(row.get('job'), row.get('status')) for row in rows]}, not {jobs} jobs done")
    for row in rows:
        job = out / row["job"]
        try:
            record = json.loads((job / "job.json").read_text())
            if record.get("status") != "done" or record.get("steps") != max_steps:
                problems.append(f"{row['job']}/job.json: {record.get('status')} at {record.get('steps')} steps, not done at {max_steps}")
        except (OSError, ValueError) as err:
            problems.append(f"{row['job']}/job.json cannot be read: {type(err).__name__}")
        try:
            with Image.open(job / "generated.png") as image:
                image.load()
        except Exception as err:  # noqa: BLE001 - any failure to decode is the finding
            problems.append(f"{row['job']}/generated.png does not decode: {type(err).__name__}")
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if (p.name.startswith(".") and p.is_file()) or p.name == LOCK_NAME]
    if leftovers:
        problems.append(f"left behind: {leftovers[:5]}")
    return problems
