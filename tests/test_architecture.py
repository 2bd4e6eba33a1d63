"""The layout (docs/architecture.md): rooms in layers, enforced; a small core; no long modules; the map up to date."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "nst_lightning"
ROOMS = ["batch", "video", "ui", "run", "evaluation", "model", "callbacks", "scale", "inputs", "outputs", "loss", "utilities"]


def test_the_layer_contracts_are_kept():
    command = shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter is not installed (pip install -e \".[test]\")")
    done = subprocess.run([command, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout and "Rooms in layers" in done.stdout and "No import cycle" in done.stdout


def test_every_room_says_what_lives_there_and_what_it_may_import():
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), room


def test_the_core_is_small_and_no_module_is_long_without_saying_why():
    tree = ast.parse((PACKAGE / "model" / "module.py").read_text())
    core = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "StyleTransfer")
    assert core.end_lineno - core.lineno + 1 <= 200
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().count("\n")
        if lines > 300:
            assert "cannot be split" in (ast.get_docstring(ast.parse(path.read_text())) or ""), f"{path}: {lines} lines"


def test_the_architecture_picture_is_generated_from_the_real_imports():
    pytest.importorskip("grimp")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "architecture.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
