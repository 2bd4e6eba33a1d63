"""A closed terminal or a dropped ssh session (SIGHUP): the run stops like on SIGTERM, with a checkpoint
and the image, and exits 129; under ``nohup`` it carries on. Real processes on a real pseudo-terminal,
closed as a terminal window is: the kernel sends the SIGHUP, and every later write to it fails."""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import torch

from nst_lightning.inputs.images import load_image
from nst_lightning.outputs.run_lock import LOCK_NAME
from tests.helpers import DEBUG_CONFIG, REPO, checkpoint

FIT = [sys.executable, "-m", "nst_lightning", "fit", "--config", DEBUG_CONFIG]


def on_a_terminal(command: list[str], cwd: Path) -> tuple[subprocess.Popen, int]:
    """Start ``command`` as the session leader of a new pseudo-terminal (its controlling terminal, as
    a shell in a terminal window has); returns the process and the terminal's master side."""
    master, slave = os.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # As a shell on a terminal starts a program: SIGHUP at its default. An ignored SIGHUP is inherited
        # (it is how nohup works), and a pytest worker may have been left ignoring it by an earlier test or
        # library: the run then rightly went on after the hang-up (CI, 2026-12-03: exit 0, then 1).
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, preexec_fn=take_terminal)
    os.close(slave)
    return process, master


def read_until(path: Path, process: subprocess.Popen, master: int, limit_s: float = 180) -> bytes:
    """What the terminal shows until ``path`` exists (read, so that the program never blocks on it)."""
    shown, deadline = b"", time.monotonic() + limit_s
    while not path.exists():
        assert process.poll() is None, f"the run ended first: {shown[-2000:]!r}"
        assert time.monotonic() < deadline, f"{path} never appeared: {shown[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                shown += os.read(master, 65536)
            except OSError:
                break
    return shown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")
@pytest.mark.slow
def test_closing_the_terminal_saves_a_checkpoint_and_the_image_and_exits_129(tmp_path):
    run_dir = tmp_path / "lightning_logs" / "debug"
    # The progress bar is on (a terminal): after the hang-up each of its writes would fail with EIO.
    process, master = on_a_terminal([*FIT, "--trainer.max_steps", "400"], tmp_path)
    try:
        read_until(run_dir / "checkpoints" / "last.ckpt", process, master)
    finally:
        os.close(master)  # the terminal window closes: the kernel sends SIGHUP to the session
    assert process.wait(timeout=180) == 129  # before: killed by SIGHUP (-1), nothing saved, the lock left
    saved = checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert 2 <= saved["global_step"] < 400
    image = load_image(str(run_dir / "generated.png"))
    assert torch.allclose(image, saved["state_dict"]["image"].clamp(0, 1), atol=1 / 255)
    assert not (run_dir / LOCK_NAME).exists()


@pytest.mark.skipif(shutil.which("nohup") is None or not sys.platform.startswith("linux"), reason="needs nohup")
@pytest.mark.slow
def test_under_nohup_a_closed_terminal_does_not_stop_the_run(tmp_path):
    run_dir = tmp_path / "lightning_logs" / "debug"
    process, master = on_a_terminal(["nohup", *FIT, "--trainer.max_steps", "30"], tmp_path)
    try:
        read_until(run_dir / "checkpoints" / "last.ckpt", process, master)
    finally:
        os.close(master)
    assert process.wait(timeout=180) == 0, (tmp_path / "nohup.out").read_text()[-3000:]
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 30
    assert "generated image: lightning_logs/debug/generated.png" in (tmp_path / "nohup.out").read_text()


HUNG_UP_WRITES = """
import os, sys
from nst_lightning.utilities.signals import hangup_tolerant_output
master, slave = os.openpty()
os.dup2(slave, 2)  # stderr is the terminal
sys.stderr = os.fdopen(2, "w", buffering=1)
with hangup_tolerant_output():
    stream = sys.stderr
    stream.write("drawn\\r")
    stream.flush()
    os.close(master)  # the terminal hangs up: its writes now fail with EIO
    try:
        os.write(slave, b"x")
    except OSError as err:
        print("raw write:", err.errno, file=sys.stdout)
    stream.write("drawn again\\r")  # the progress bar's next refresh
    stream.flush()
print("survived; stderr now", os.path.realpath(f"/proc/self/fd/2"), file=sys.stdout)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")
def test_writes_to_a_hung_up_terminal_before_the_sighup_do_not_end_the_run():
    # A run whose SIGHUP is ignored (inherited: `trap '' HUP`, a parent that ignores it) goes on when its
    # terminal closes, and every write to it then fails with EIO: a progress bar ended such a run with
    # exit 1 and no checkpoint. The stream now drops the write and points itself at /dev/null.
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", HUNG_UP_WRITES], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "raw write: 5" in done.stdout  # EIO: what the stream met
    assert "survived; stderr now /dev/null" in done.stdout
