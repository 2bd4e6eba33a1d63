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

import os
import re
from pathlib import Path
from typing import Optional

from nst_lightning.run import lock_file
from nst_lightning.run.run_lock import _first_missing

VERSION = re.compile(r"version_(\d+)")


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
            raise lock_file.write_failed(err, base) from None
        numbers = versions(base)
        self.number = numbers[-1] + 1 if numbers else 0
        while True:
            try:
                os.mkdir(self.path)
                return
            except FileExistsError:  # claimed by another run this instant (or a file of that name)
                self.number += 1
            except OSError as err:
                raise lock_file.write_failed(err, self.path) from None

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
