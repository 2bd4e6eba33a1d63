"""The batch tests' collection: photos and paintings in a temporary working directory."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import make_image

COLORS = [(200, 60, 20), (20, 160, 60), (90, 90, 200)]


@pytest.fixture
def collection(tmp_path, monkeypatch):
    """3 photos (40x30) in photos/, 2 paintings; the working directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    (tmp_path / "photos").mkdir()
    for i, color in enumerate(COLORS):
        make_image(tmp_path / "photos" / f"p{i}.png", color=color)
    make_image(tmp_path / "s1.png", size=(30, 40), color=(10, 200, 200))
    make_image(tmp_path / "s2.png", size=(36, 36), color=(240, 240, 10))
    return tmp_path
