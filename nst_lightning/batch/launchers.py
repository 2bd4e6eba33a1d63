"""Where a batch's jobs run: the launchers of ``run/launchers.py`` (one after another in this process,
or as Ray tasks), each group of jobs one unit, run by ``jobs.run_group``: the same code, the same
files, whatever the launcher. Adding a launcher is one function in ``run/launchers.py`` and one name
in ``LAUNCHERS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from nst_lightning.batch.jobs import run_group
from nst_lightning.batch.plan import Job
from nst_lightning.run import launchers

Finished = Callable[[list[dict[str, Any]]], None]


def sequential(groups: Sequence[Sequence[Job]], out: Path, fit_args: Sequence[str], finished: Finished, **_: Any) -> None:
    launchers.sequential([(list(group), str(out), list(fit_args)) for group in groups], run_group, finished)


def ray(groups: Sequence[Sequence[Job]], out: Path, fit_args: Sequence[str], finished: Finished, **options: Any) -> None:
    launchers.ray([(list(group), str(out), list(fit_args)) for group in groups], run_group, finished, **options)


LAUNCHERS: dict[str, Callable[..., None]] = {"sequential": sequential, "ray": ray}
