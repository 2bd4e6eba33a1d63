"""Writing files so that no reader ever sees half of one, and where downloads are cached.

A run can be killed at any instant (SIGKILL, power loss, a full disk). Every file the project writes
(checkpoints, result images, cached downloads) is therefore written to a temporary file in the *same
directory* and then renamed over the target: ``os.replace`` within one filesystem is atomic, so the
target is either the complete old file or the complete new one. A temporary file in another directory
(``/tmp``) would not do: across filesystems a "rename" is a copy, which can be cut short.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional

CACHE_ENV = "NST_LIGHTNING_CACHE"
# Temporary files are hidden and end in .tmp: Lightning's `--ckpt_path last` looks for files named
# last*.ckpt, and must never pick up a half-written one.
TMP_SUFFIX = ".tmp"


# A full disk, a quota, a read-only or failing filesystem: the write cannot succeed by retrying.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


class WriteFailed(OSError):
    """A file could not be written for lack of space or a failing filesystem; the message says which
    file, why, how much was needed and how much is free. The previous version of the file, if any,
    is intact (``atomic_write``) and no temporary file is left."""

    def __str__(self) -> str:
        return str(self.strerror)


def describe_write_failure(path: str | os.PathLike, err: OSError, written: int = 0, needed: int = 0, what: str = "") -> str:
    """One clause: what could not be written (``what``, default ``path``), where, why, and the space it
    needed and there is."""
    directory = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        free = f"{_amount(shutil.disk_usage(directory).free)} free there"
    except OSError:
        free = "free space unknown"
    if needed:
        free = f"about {_amount(needed)} needed, {free}"
    elif written:
        free = f"{_amount(written)} written when it failed, {free}"
    return f"could not write {what or path}: {err.strerror or err} ({free})"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], needed: int = 0) -> Path:
    """Create or replace ``path`` with what ``write(handle)`` writes, atomically and durably.
    ``needed``: the size expected, for the message of a ``WriteFailed``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as err:
        if err.errno in DISK_ERRNOS:
            raise WriteFailed(err.errno, describe_write_failure(path, err, 0, needed)) from None
        raise
    try:
        # mkstemp makes the file private (0600); give it the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            try:
                write(handle)
                handle.flush()
                # Without fsync a crash of the machine (not just of the process) could leave the
                # renamed file empty: the rename can reach the disk before the data does.
                os.fsync(handle.fileno())
            except Exception as err:
                # torch.save's zip writer turns a full disk into "RuntimeError: ... unexpected pos",
                # raised while handling the OSError: look for that, else ask the file itself.
                disk_error = None if isinstance(err, OSError) else (_disk_cause(err) or _disk_error(handle))
                if disk_error is None:
                    raise
                raise disk_error from None
        os.replace(tmp, path)
    except OSError as err:
        written = _size(tmp)
        Path(tmp).unlink(missing_ok=True)
        if err.errno in DISK_ERRNOS:
            raise WriteFailed(err.errno, describe_write_failure(path, err, written, needed)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _disk_cause(err: BaseException) -> Optional[OSError]:
    """A disk OSError among the exceptions ``err`` was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def _disk_error(handle: BinaryIO) -> Optional[OSError]:
    """The OSError a full (or failing) disk gives when one more byte is written and synced to
    ``handle``; ``None`` if the write succeeds (the failure was something else)."""
    try:
        handle.seek(0, os.SEEK_END)
        handle.write(b"\0")
        handle.flush()
        os.fsync(handle.fileno())
    except OSError as err:
        return err if err.errno in DISK_ERRNOS else None
    except Exception:
        return None
    return None


def _amount(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it; put it back at once
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files that a killed ``atomic_write`` left in ``directory``; returns them.

    Only for a directory that no other process is writing to (a run directory being resumed).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def cache_dir() -> Path:
    """Where downloaded images are kept: ``$NST_LIGHTNING_CACHE``, else ``$XDG_CACHE_HOME/nst_lightning``
    (``~/.cache/nst_lightning``)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nst_lightning"
