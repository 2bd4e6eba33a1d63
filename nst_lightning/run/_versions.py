"""A run directory of its own for each run: ``save_dir/name/version_N``, unless a version is named.

A run whose logger names no version (the configs' way) gets the next ``version_N`` of its
``save_dir/name``, as Lightning numbers them, so running a config again starts a new run beside the
first instead of being refused. The number is *claimed* by creating its directory: ``mkdir`` creates
it or fails because it exists, atomically on a local filesystem and on NFS, so two runs started at
once never share a directory (the later takes the next number); each then takes the run lock in its
own (``run_lock``), as every run does. A claimed directory that is still empty when the run ends
(refused, or stopped before it wrote anything) is removed, with the parents the claim created.

``--ckpt_path last`` without a version continues the latest of those runs that holds a last checkpoint
(the highest N; one still running is refused by its lock); where none does, it is a new run.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

from nst_lightning.outputs import _lock_file
from nst_lightning.outputs.run_lock import _first_missing
from nst_lightning.utilities.errors import UserError, param
from nst_lightning.utilities.files import WriteFailed

VERSION = re.compile(r"version_(\d+)")
# Loggers whose runs are save_dir/name/version_N, numbered here where no version is named.
NUMBERED_LOGGERS = ("TensorBoardLogger", "CSVLogger")


def versions(base: Path) -> list[int]:
    """The numbers of the ``version_N`` directories in ``base``, in order."""
    try:
        names = [entry.name for entry in os.scandir(base) if entry.is_dir()]
    except OSError:  # no such directory yet (or not one)
        return []
    return sorted(int(match.group(1)) for match in map(VERSION.fullmatch, names) if match)


def latest_with(base: Path, last: str) -> Optional[int]:
    """The highest N whose ``base/version_N/last`` exists (``last``: the last checkpoint's path inside
    a run directory), or ``None``."""
    return next((n for n in reversed(versions(base)) if (base / f"version_{n}" / last).is_file()), None)


class ClaimedVersion:
    """``base/version_N``, created by this process for its run (``claim``)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.top = _first_missing(base)  # the topmost directory the claim creates (None: base exists)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _lock_file.write_failed(err, base) from None
        numbers = versions(base)
        self.number = numbers[-1] + 1 if numbers else 0
        while True:
            try:
                os.mkdir(self.path)
                return
            except FileExistsError:  # claimed by another run this instant (or a file of that name)
                self.number += 1
            except OSError as err:
                raise _lock_file.write_failed(err, self.path) from None

    @property
    def path(self) -> Path:
        return self.base / f"version_{self.number}"

    def remove_if_empty(self) -> None:
        """Remove the run's directory if nothing was written into it, and the parents the claim created
        if that leaves them empty (another run's files keep them)."""
        directory, last = self.path, self.top if self.top is not None else self.path
        while True:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty, or gone
            if directory == last or directory.parent == directory:
                return
            directory = directory.parent


class NumberedRun:
    """The version chosen for a run whose logger named none: ``init`` (the logger's ``init_args`` in the
    parsed config) holds it until the classes are built, then ``forget`` puts ``null`` back, so that the
    config's copies (config.yaml, the one in the result) say "a new run", as the command did."""

    def __init__(self, init: Any, number: int) -> None:
        self.init = init
        init["version"] = number

    def forget(self) -> None:
        self.init["version"] = None


def number_the_run(config: Any, last: str, cleanup: contextlib.ExitStack, say: Callable[[str], None]) -> Optional[NumberedRun]:
    """Give the run of ``config`` (a parsed ``fit`` configuration) its ``version_N`` where its logger
    names none: for ``--ckpt_path last`` the latest run with a last checkpoint (``last``: its path inside
    a run directory), saying which, else a new version, claimed now and removed by ``cleanup`` if the run
    leaves it empty. ``None``: a version is named (or the logger has no such layout), nothing to do."""
    logger = config.get("trainer.logger")
    init = getattr(logger, "init_args", None)
    if init is None or init.get("version") is not None or str(getattr(logger, "class_path", "")).rsplit(".", 1)[-1] not in NUMBERED_LOGGERS:
        return None
    base = Path(init.get("save_dir") or ".") / (init.get("name") or "")
    resume = config.get("ckpt_path") == "last" and config.get("checkpoint.dirpath") is None
    latest = latest_with(base, last) if resume else None
    if latest is not None:
        say(f"--ckpt_path last: continuing {base / f'version_{latest}'}, the latest run in {base} with a checkpoint")
        return NumberedRun(init, latest)
    try:
        claimed = ClaimedVersion(base)
    except WriteFailed as err:  # a full disk: the one line of any write
        raise UserError(f"{err}; nothing was written: free some space and start again") from None
    except OSError as err:
        raise UserError(
            f"{param('trainer.logger.init_args.save_dir')} {init.get('save_dir')}: cannot create the run's directory {base} "
            f"there ({err.strerror}); give a directory this program can write"
        ) from None
    cleanup.callback(claimed.remove_if_empty)  # a run refused or stopped before writing leaves nothing
    if resume:
        say(f"--ckpt_path last: no run in {base} has a checkpoint yet, so this is a new run, {claimed.path}")
    return NumberedRun(init, claimed.number)
