"""The run lock's file on disk (``run_lock.RunLock`` decides who holds it): written whole, read warily.

Written: the record goes whole into a hidden temporary file in the same directory, which is then
hard-linked to the lock's name. ``link`` fails if the name exists, atomically (on NFS too, where a
lost reply is told apart by the temporary's link count), so a lock appears complete or not at all,
whatever stops its creator: a kill, a power cut, or a full disk (a ``WriteFailed``, with nothing left
behind). A temporary left by a kill is hidden and ends in ``.tmp``, so the next holder's start removes
it (``utilities.files.remove_stale_temporaries``). Where there are no hard links (FAT, some FUSE and
SMB mounts) the lock is created in place, then written, as before.

Read: anything may be found under the name (an empty file from an older version, garbage, a
directory, a FIFO), so it is opened without blocking, read up to a bound, and either is a record
this program wrote or is reported ``unreadable``, with its age and identity, for the caller to judge.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from nst_lightning.utilities.files import DISK_ERRNOS, TMP_SUFFIX, WriteFailed, describe_write_failure

# A record is ~200 bytes; more than this is not one (and is not read whole).
MAX_RECORD_BYTES = 64 * 1024
# link() fails with these where a filesystem has no hard links.
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


def write_failed(err: OSError, path: str | os.PathLike) -> OSError:
    """A full disk (or a failing filesystem) as the one-line ``WriteFailed``; other errors as they are."""
    if err.errno not in DISK_ERRNOS:
        return err
    return WriteFailed(err.errno, describe_write_failure(path, err))


def create(path: Path, record: dict[str, Any]) -> bool:
    """Make ``path`` hold ``record`` if nothing is there (``True``); ``False`` if something is."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as err:
        raise write_failed(err, path) from None
    try:
        with os.fdopen(fd, "w") as handle:
            _write(handle, record)
        try:
            os.chmod(tmp, 0o644)
            os.link(tmp, path)  # atomic: the lock appears whole, or not at all
        except FileExistsError:
            return False
        except FileNotFoundError:
            # Our temporary is gone (at the chmod or the link): the holder's start removes hidden
            # temporaries in its directory, so there is a holder; the caller reads it.
            return False
        except OSError as err:
            if err.errno in NO_HARD_LINKS:
                return _create_in_place(path, record)
            if _links(tmp) == 2:  # NFS: the link was made, its reply lost
                return True
            raise
        return True
    except OSError as err:
        raise write_failed(err, path) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _create_in_place(path: Path, record: dict[str, Any]) -> bool:
    """Without hard links: create ``path`` itself, then write it (a reader may see it empty for a
    moment, and a kill in between leaves it so: it then counts as stale after a while)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as handle:
            _write(handle, record)
    except BaseException:
        path.unlink(missing_ok=True)  # ours, and empty or half-written: never leave it
        raise
    return True


def _write(handle: Any, record: dict[str, Any]) -> None:
    json.dump(record, handle)
    handle.flush()
    os.fsync(handle.fileno())


def read(path: Path) -> Optional[dict[str, Any]]:
    """The record at ``path`` with ``age_s`` (since its last change: the heartbeat) and ``identity``
    (which file, which version of it); ``None`` if there is none; for anything else under the name,
    ``unreadable`` (why) and ``regular`` (a plain file, which may be taken over once stale)."""
    try:
        # O_NONBLOCK: a FIFO under the name must not hang the run; it is reported below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as err:
        try:
            info: Optional[os.stat_result] = path.lstat()
        except FileNotFoundError:
            return None
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            return _unreadable("a directory", info, regular=False)
        return _unreadable((err.strerror or str(err)).lower(), info, regular=info is not None and stat.S_ISREG(info.st_mode))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _unreadable("a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file", info, regular=False)
        data = os.read(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        record = None
    if not (isinstance(record, dict) and isinstance(record.get("host"), str) and isinstance(record.get("pid"), int)
            and isinstance(record.get("token"), str)):
        return _unreadable("empty" if not data else "not a lock record", info, regular=True)
    record["age_s"] = time.time() - info.st_mtime
    record["identity"] = _identity(info)
    return record


def same(now: dict[str, Any], then: dict[str, Any]) -> bool:
    """Whether the lock read ``now`` is the one read ``then``: by its token, or (unreadable) by its
    identity."""
    if "unreadable" in then:
        return "unreadable" in now and now["identity"] is not None and now["identity"] == then["identity"]
    return "unreadable" not in now and now.get("token") == then.get("token")


def _unreadable(why: str, info: Optional[os.stat_result], regular: bool) -> dict[str, Any]:
    age = time.time() - info.st_mtime if info is not None else 0.0
    return {"unreadable": why, "regular": regular, "age_s": age, "identity": _identity(info) if info is not None else None}


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    """A lock re-created or rewritten meanwhile has another."""
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _links(path: str) -> int:
    try:
        return os.stat(path).st_nlink
    except OSError:
        return 0
