"""Writing files so that no reader ever sees half of one, and where downloads are cached.

A run can be killed at any instant (SIGKILL, power loss, a full disk). Every file the project writes
(checkpoints, result images, cached downloads) is therefore written to a temporary file in the *same
directory* and then renamed over the target: ``os.replace`` within one filesystem is atomic, so the
target is either the complete old file or the complete new one. A temporary file in another directory
(``/tmp``) would not do: across filesystems a "rename" is a copy, which can be cut short.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

CACHE_ENV = "NST_LIGHTNING_CACHE"
# Temporary files are hidden and end in .tmp: Lightning's `--ckpt_path last` looks for files named
# last*.ckpt, and must never pick up a half-written one.
TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace ``path`` with what ``write(handle)`` writes, atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        # mkstemp makes the file private (0600); give it the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            # Without fsync a crash of the machine (not just of the process) could leave the renamed
            # file empty: the rename can reach the disk before the data does.
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


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
