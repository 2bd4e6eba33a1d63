"""One writer per run directory (run_lock.py), with real processes: a simultaneous start, a resume of
a run still going, a lock left by SIGKILL, a lock held on another host, a race to take a stale lock,
locks that cannot be read (empty, garbage, not a file) and a full disk while taking one."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nst_lightning.outputs.run_lock import LOCK_NAME, RunLock
from nst_lightning.utilities.errors import UserError
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, checkpoint

FIT = ["fit", "--config", str(DEBUG_CONFIG), "--trainer.enable_progress_bar", "false"]


def start(cwd: Path, *args: str) -> forked.Forked:
    return forked.nst_lightning([*FIT, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return forked.run([*FIT, *args], cwd=cwd, timeout=120)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_directory_one_runs(tmp_path):
    # Long enough (160 steps, seconds) that the second reaches the lock while the first holds it: both
    # take it right after parsing, at the same moment give or take the interpreters' start.
    runs = [start(tmp_path, "--trainer.max_steps", "160", "--checkpoint.every_n_train_steps", "40") for _ in range(2)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "Traceback" not in loser
    assert "is in use by another run (pid " in last_line(loser) and "on this host" in last_line(loser)
    run_dir = tmp_path / "lightning_logs" / "debug"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # one writer's events
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.ckpt", "step000040.ckpt", "step000080.ckpt", "step000120.ckpt", "step000160.ckpt"
    ]
    assert not (run_dir / LOCK_NAME).exists()  # given back at the end


@pytest.mark.slow
def test_a_resume_of_a_running_run_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "lightning_logs" / "debug"
    first = start(tmp_path, "--trainer.max_steps", "100000", "--checkpoint.every_n_train_steps", "5")
    wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").exists())
    second = fit(tmp_path, "--ckpt_path", "last", "--trainer.max_steps", "100000", "--checkpoint.every_n_train_steps", "5")
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid} on this host" in last_line(second.stderr)
    holder = json.loads((run_dir / LOCK_NAME).read_text())
    assert holder["pid"] == first.pid
    # Killed without a chance to clean up: its lock stays, and is taken over (the pid is gone).
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert (run_dir / LOCK_NAME).exists()
    step = checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    resumed = fit(tmp_path, "--ckpt_path", "last", "--trainer.max_steps", str(step + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == step + 2
    assert not (run_dir / LOCK_NAME).exists()


def write_foreign_lock(directory: Path, host: str, age_s: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {"host": host, "pid": 12345, "pid_start": "1", "since": "2026-12-01T10:00:00+00:00", "token": "theirs"}
    (directory / LOCK_NAME).write_text(json.dumps(record))
    then = time.time() - age_s
    os.utime(directory / LOCK_NAME, (then, then))


def test_a_lock_held_on_another_host_is_respected_until_its_heartbeat_is_stale(tmp_path, run_cli, run_dir, capsys):
    write_foreign_lock(run_dir, "render-node-7", age_s=10)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli()
    assert exit_info.value.code == 2
    line = last_line(capsys.readouterr().err)
    # The heartbeat's age is counted when the CLI reads the lock, a second or two after it was set.
    holder = r"\(pid 12345 on host render-node-7, since 2026-12-01T10:00:00\+00:00, last heartbeat 1\d s ago\)"
    assert re.search(r"is in use by another run " + holder, line), line
    assert "--trainer.logger.init_args.version NAME" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # nothing written
    # Older than the limit (300 s): that host's run is dead, its lock is taken over.
    write_foreign_lock(run_dir, "render-node-7", age_s=301)
    run_cli()
    assert (run_dir / "generated.png").exists() and not (run_dir / LOCK_NAME).exists()


def test_a_dead_pid_on_this_host_or_a_reused_one_is_stale(tmp_path):
    lock = RunLock(tmp_path)
    here = lock.record["host"]
    assert lock.stale_reason({"host": here, "pid": 2**22 + 7, "age_s": 0}) is not None  # no such pid
    mine = {"host": here, "pid": os.getpid(), "pid_start": lock.record["pid_start"], "age_s": 0}
    assert lock.stale_reason(mine) is None
    if lock.record["pid_start"] is not None:  # Linux: a reused pid is told apart by its start time
        assert "another process" in lock.stale_reason({**mine, "pid_start": "1"})


def test_the_heartbeat_keeps_a_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr("nst_lightning.outputs.run_lock.HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path).acquire()
    try:
        then = time.time() - 1000
        os.utime(lock.path, (then, then))
        wait_for(lambda: time.time() - lock.path.stat().st_mtime < 10, timeout=10)
        with pytest.raises(UserError, match="is in use by another run"):
            RunLock(tmp_path, stale_after_s=100).acquire()
    finally:
        lock.release()
    assert not lock.path.exists()


RACE = """
import os, sys, time
from pathlib import Path
from nst_lightning.utilities.errors import UserError
from nst_lightning.outputs.run_lock import RunLock
directory = Path(sys.argv[1])
(directory / "ready").mkdir(exist_ok=True)
(directory / "ready" / str(os.getpid())).touch()
while not (directory / "go").exists():  # all start together, once every interpreter is ready
    time.sleep(0.001)
try:
    lock = RunLock(directory).acquire()
except UserError:
    print("refused")
    sys.exit(0)
(directory / "holders").mkdir(exist_ok=True)
mark = directory / "holders" / str(lock.record["pid"])
mark.touch()
time.sleep(1.0)
print("held", len(list((directory / "holders").iterdir())))
mark.unlink()
lock.release()
"""


def test_a_stale_lock_is_taken_over_by_exactly_one_of_many(tmp_path):
    write_foreign_lock(tmp_path, "gone-host", age_s=10_000)
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    wait_for(lambda: len(list((tmp_path / "ready").glob("*"))) == 4 if (tmp_path / "ready").exists() else False)
    (tmp_path / "go").touch()
    outputs = [racer.communicate(timeout=120)[0].strip() for racer in racers]
    assert sorted(outputs) == ["held 1"] + ["refused"] * 3, outputs
    assert not (tmp_path / LOCK_NAME).exists()


# ---- locks that cannot be read, and a full disk while taking one ----------------------------------


@pytest.mark.slow
def test_an_empty_lock_is_refused_saying_how_to_remove_it_then_taken_over_once_stale(tmp_path):
    # What a run stopped between creating its lock and writing it left (a full disk, a kill, a power
    # cut): before, every later run retried and stopped with "keeps changing hands; try again".
    run_dir = tmp_path / "lightning_logs" / "debug"
    run_dir.mkdir(parents=True)
    (run_dir / LOCK_NAME).write_bytes(b"")
    refused = fit(tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    line = last_line(refused.stderr)
    assert line.startswith(f"nst_lightning: error: lightning_logs/debug/{LOCK_NAME} cannot be read (empty): "), line
    assert "counts as stale 300 s after its last change" in line
    assert f"if no run is using lightning_logs/debug, remove it (rm lightning_logs/debug/{LOCK_NAME}) and start again" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # nothing written, the lock left alone
    # Untouched for longer than a heartbeat's stale time: no run holds it, the next one takes it over.
    then = time.time() - 301
    os.utime(run_dir / LOCK_NAME, (then, then))
    done = fit(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "generated.png").exists() and not (run_dir / LOCK_NAME).exists()


@pytest.mark.parametrize("content", [b"\x00\xff garbage", b'{"host": 3}', b"[1, 2]", b'{"host": "h", "pid": "x", "token": "t"}'],
                         ids=["binary", "wrong-types", "not-a-record", "bad-pid"])
def test_a_garbage_lock_is_unreadable_until_stale(tmp_path, content):
    (tmp_path / LOCK_NAME).write_bytes(content)
    with pytest.raises(UserError, match=r"cannot be read \(not a lock record\): .* remove it \(rm "):
        RunLock(tmp_path).acquire()
    then = time.time() - 301
    os.utime(tmp_path / LOCK_NAME, (then, then))
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.record["token"]
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_fifo_or_a_directory_named_run_lock_is_refused_without_hanging_and_never_removed(tmp_path):
    os.mkfifo(tmp_path / LOCK_NAME)
    then = time.time() - 10_000  # however old: only a plain file may be taken over
    os.utime(tmp_path / LOCK_NAME, (then, then))
    with pytest.raises(UserError, match=r"run.lock is not a regular file, not a lock this program wrote; if no run is using"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).unlink()
    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(UserError, match=r"run.lock is a directory, not a lock this program wrote"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).is_dir()


def test_a_lock_write_that_fails_leaves_no_lock_and_no_temporary(tmp_path, monkeypatch):
    # The record is written into a temporary file and linked into place: a write cut short by a full
    # disk leaves nothing (before, an empty run.lock that blocked the directory).
    from nst_lightning.outputs import _lock_file
    from nst_lightning.utilities.files import WriteFailed

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_lock_file.os, "fsync", no_space)
    with pytest.raises(WriteFailed, match=rf"^could not write {re.escape(str(tmp_path / LOCK_NAME))}: No space left on device \("):
        RunLock(tmp_path).acquire()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    RunLock(tmp_path).acquire().release()  # and the directory is free at once


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_while_taking_the_lock_is_one_line_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("needs root to mount a tmpfs")
    try:
        # The disk is full before the run starts (unbuffered: closing the file has nothing left to write).
        with open(disk / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
        done = fit(tmp_path, "--trainer.logger.init_args.save_dir", str(disk))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert last_line(done.stderr) == (
            f"nst_lightning: error: could not write {disk}/debug/{LOCK_NAME}: No space left on device (0.0 kB free there); "
            "no checkpoint had been written yet: free some space and start again"
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no run directory, no empty lock
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_lock_temporary_removed_by_the_holders_start_is_a_busy_lock_not_a_crash(tmp_path, monkeypatch):
    # The race CI once hit: the run holding the lock starts, and removes hidden temporaries from its
    # directory (a killed write's leftovers) just as a second run has made its lock's temporary and not
    # yet linked it. The second must then see the holder, not fail with FileNotFoundError.
    from nst_lightning.outputs import _lock_file

    real_chmod = os.chmod

    def chmod_after_the_holder_cleaned_up(path, mode):
        Path(path).unlink()
        return real_chmod(path, mode)

    monkeypatch.setattr(_lock_file.os, "chmod", chmod_after_the_holder_cleaned_up)
    assert _lock_file.create(tmp_path / "run.lock", {"pid": 1}) is False
    assert not list(tmp_path.iterdir())  # and nothing is left
