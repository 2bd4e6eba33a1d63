"""A version claim made in a process of its own (``test_versions.py``'s claims at the same instant).

Its own module, importing only what a claim needs: a spawned process imports the module its target lives
in, and the test module's imports (the CLI, Lightning, torch) cost each of six processes ~1.6 CPU s."""

from __future__ import annotations

from pathlib import Path

from nst_lightning.run._versions import ClaimedVersion


def claim(base: str, start, numbers) -> None:
    start.wait()
    numbers.put(ClaimedVersion(Path(base)).number)
