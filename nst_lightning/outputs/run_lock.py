"""One writer per run directory: a lock file that works across processes and machines.

Two runs writing into one directory interleave their checkpoints and event files, and the result is
whichever finished last. So a run takes ``run.lock`` in its directory before it writes anything and
holds it to the end. The lock must hold on a filesystem shared by several machines (NFS), where
``fcntl`` locks are not dependable, so it is a file that appears atomically, whole or not at all
(``_lock_file.py``: written into a temporary file, then hard-linked to its name, which fails if the
name exists, atomically on local filesystems and NFSv3 and later), holding its owner (host, pid, the
pid's start time, when); its modification time is a heartbeat, renewed every ``HEARTBEAT_S`` by a thread.

A lock left by a run that was killed is taken over when it is provably stale: on the same host, its
pid is gone (or is another process, by its start time); on another host, its heartbeat is older than
``stale_after_s`` by this host's clock (hosts sharing a filesystem are assumed to keep their clocks
within a minute of each other, as NTP does). A takeover happens under a second, short-lived lock file
(``run.lock.takeover``), re-reading the owner inside it, so two processes that both found the lock
stale never both take it.

So a lock is never seen empty or half-written, whatever stops its creator (a kill, a power cut, a full
disk: ``WriteFailed``, which the CLI turns into the one line of any write). A lock that cannot be read
anyway (left by an older version, by a filesystem without hard links, or by hand) has no owner to ask:
it counts as stale once untouched for ``stale_after_s``, and until then the refusal says how to remove
it; something that is not a plain file (a directory, a FIFO) is never removed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from nst_lightning.outputs import _lock_file
from nst_lightning.utilities.errors import UserError

LOCK_NAME = "run.lock"
HEARTBEAT_S = 30.0
# Ten missed heartbeats: a run on another host that has not renewed its lock for this long is dead
# (or cut off from the filesystem, and then it cannot write anyway). NST_LIGHTNING_LOCK_STALE_S sets it.
STALE_AFTER_S = 300.0
# A takeover takes milliseconds; a takeover file older than this was left by a killed process.
TAKEOVER_STALE_S = 60.0
# A lock this young that cannot be read may still be being written (by an older version, or where
# there are no hard links): look again for this long before refusing.
UNREADABLE_GRACE_S = 2.0


def _process_start(pid: int) -> Optional[str]:
    """The start time of ``pid`` (clock ticks since boot, Linux), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as process:
            return process.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """Holds ``run.lock`` in ``directory`` from ``acquire()`` to ``release()``. Plain Python, without
    Lightning (a process that only checks or takes a lock starts in milliseconds, not the seconds
    Lightning's import takes); a fit holds it to its end through ``callbacks.run_lock.HoldRunLock``."""

    def __init__(self, directory: str | os.PathLike, stale_after_s: Optional[float] = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.stale_after_s = stale_after_s or _stale_after_from_environment()
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()),
            "since": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
        }
        self._stop = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self.created_directory = False
        self._created_top: Optional[Path] = None  # the topmost directory acquire() created

    @property
    def held(self) -> bool:
        return self._heartbeat is not None

    # ---- taking and giving back -----------------------------------------------------------------

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ``UserError`` naming its holder and the way on (``WriteFailed``: the
        disk is full, and nothing is left behind)."""
        if self.held:
            return self
        self.created_directory = not self.directory.exists()
        self._created_top = _first_missing(self.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _lock_file.write_failed(err, self.directory) from None
        holder: Optional[dict[str, Any]] = None
        for _ in range(20):
            if _lock_file.create(self.path, self.record):
                self._heartbeat = threading.Thread(target=self._beat, name="nst-run-lock", daemon=True)
                self._heartbeat.start()
                return self
            holder = _lock_file.read(self.path)
            if holder is None:  # given back or taken over this instant: look again
                continue
            why_stale = self.stale_reason(holder)
            if why_stale is not None:
                self._take_over(holder)
            elif "unreadable" not in holder:
                raise UserError(self._busy_message(holder))
            elif holder["age_s"] < UNREADABLE_GRACE_S and holder["regular"]:
                time.sleep(0.1)  # perhaps still being written by a creator without link(): look again
            else:
                raise UserError(self._unreadable_message(holder))
        if holder is not None and "unreadable" in holder:
            raise UserError(self._unreadable_message(holder))
        raise UserError(f"{self.directory}: could not take {LOCK_NAME} (it keeps changing hands); try again")

    def release(self) -> None:
        """Give the lock back (only if it is still ours)."""
        if not self.held:
            return
        self._stop.set()
        self._heartbeat.join(timeout=5)
        self._heartbeat = None
        holder = _lock_file.read(self.path)
        if holder is not None and holder.get("token") == self.record["token"]:
            self.path.unlink(missing_ok=True)

    def remove_created_directories(self) -> None:
        """Remove the directories ``acquire`` created, if they are empty (a run refused or stopped
        before writing anything leaves nothing behind)."""
        if self._created_top is None:
            return
        directory = self.directory
        while True:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (another run's now), or gone
            if directory == self._created_top or directory.parent == directory:
                return
            directory = directory.parent

    def stale_reason(self, holder: dict[str, Any]) -> Optional[str]:
        """Why the lock ``holder`` is dead (``None``: it is not known to be)."""
        if "unreadable" in holder:  # no owner to ask: only its age tells
            if holder["regular"] and holder["age_s"] > self.stale_after_s:
                return f"it is unreadable ({holder['unreadable']}) and untouched for {holder['age_s']:.0f} s"
            return None
        if holder.get("host") == self.record["host"]:
            pid = int(holder.get("pid", -1))
            if pid <= 0 or not _pid_alive(pid):
                return f"its process {pid} is gone"
            started = _process_start(pid)
            if holder.get("pid_start") and started and started != holder["pid_start"]:
                return f"pid {pid} is now another process"
            return None
        if holder["age_s"] > self.stale_after_s:
            return f"its heartbeat stopped {holder['age_s']:.0f} s ago"
        return None

    def _take_over(self, stale: dict[str, Any]) -> None:
        """Remove the stale lock ``stale``, unless it changed meanwhile, under the takeover lock."""
        takeover = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            fd = os.open(takeover, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as err:
            if not isinstance(err, FileExistsError):
                raise _lock_file.write_failed(err, takeover) from None
            try:
                if time.time() - takeover.stat().st_mtime > TAKEOVER_STALE_S:
                    takeover.unlink(missing_ok=True)  # left by a process killed mid-takeover
            except OSError:
                pass
            time.sleep(0.05)  # another process is taking over: look again after it
            return
        try:
            os.close(fd)
            now = _lock_file.read(self.path)
            if now is not None and _lock_file.same(now, stale):
                self.path.unlink(missing_ok=True)
        finally:
            takeover.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass  # a full or flaky filesystem: the run's own writes will say so

    def _busy_message(self, holder: dict[str, Any]) -> str:
        where = "this host" if holder.get("host") == self.record["host"] else f"host {holder.get('host')}"
        return (
            f"{self.directory} is in use by another run (pid {holder.get('pid')} on {where}, since "
            f"{holder.get('since')}, last heartbeat {holder['age_s']:.0f} s ago); wait for it to finish, or "
            "start a new run elsewhere with --trainer.logger.init_args.version NAME"
        )

    def _unreadable_message(self, holder: dict[str, Any]) -> str:
        if not holder["regular"]:
            return (
                f"{self.path} is {holder['unreadable']}, not a lock this program wrote; if no run is using "
                f"{self.directory}, remove it and start again"
            )
        return (
            f"{self.path} cannot be read ({holder['unreadable']}): a run stopped while taking it (killed, or a full "
            f"disk) left it, and it counts as stale {self.stale_after_s:.0f} s after its last change "
            f"({holder['age_s']:.0f} s ago); if no run is using {self.directory}, remove it (rm {self.path}) and start again"
        )


def _stale_after_from_environment() -> float:
    value = os.environ.get("NST_LIGHTNING_LOCK_STALE_S")
    if value is None:
        return STALE_AFTER_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"NST_LIGHTNING_LOCK_STALE_S must be a positive number of seconds, not {value!r}")
    return seconds


def _first_missing(directory: Path) -> Optional[Path]:
    """The topmost of ``directory`` and its parents that does not exist (``None``: it exists)."""
    missing = None
    while not directory.exists():
        missing = directory
        if directory.parent == directory:
            break
        directory = directory.parent
    return missing
