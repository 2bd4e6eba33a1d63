"""The layout (docs/architecture.md): rooms in layers, enforced; no module grown unnoticed; the map up to date."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest
import tomllib

from tests.helpers import REPO

PACKAGE = REPO / "nst_lightning"


def rooms() -> list[str]:
    """The rooms of the layers contract in pyproject.toml, top first (``__main__`` is a module, not a room)."""
    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    names = [name.strip().removeprefix("nst_lightning.") for layer in contract["layers"] for name in layer.split("|")]
    return [name for name in names if name != "__main__"]


def test_the_layer_contracts_are_kept():
    command = shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter is not installed (pip install -e \".[test]\")")
    done = subprocess.run([command, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout and "Rooms in layers" in done.stdout and "No import cycle" in done.stdout


def test_every_room_is_in_the_layers_and_says_what_lives_there_and_what_it_may_import():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} - {"assets"}  # assets: the built-in images
    assert sorted(rooms()) == sorted(packages)
    for room in rooms():
        doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), room


def test_no_module_grows_past_a_smoke_alarm():
    # Not a design rule (judgement decides what a module holds): a module past 400 lines is one that
    # has grown unnoticed, and should be looked at.
    long = {str(path.relative_to(REPO)): n for path in PACKAGE.rglob("*.py") if (n := path.read_text().count("\n")) > 400}
    assert not long, long


def test_the_architecture_picture_is_generated_from_the_real_imports():
    pytest.importorskip("grimp")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "architecture.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
