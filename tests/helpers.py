"""Helpers the tests share (fixtures are in conftest.py): paths, tiny images, run outputs, user errors."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEBUG_CONFIG = str(CONFIGS / "debug.yaml")


def shared_weights_path() -> Path | None:
    """Real ImageNet VGG19 weights for quality tests: $NST_LIGHTNING_WEIGHTS, else ../shared/weights."""
    candidates = [os.environ.get("NST_LIGHTNING_WEIGHTS"), REPO.parent / "shared/weights/vgg19_features_tvnorm.pth"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def make_image(path: Path, size=(40, 30), color=(200, 60, 20), mode: str = "RGB", **save_kwargs) -> Path:
    """A small test image with a gradient so that its Gram matrices are not degenerate."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        for y in range(size[1]):
            image.putpixel((x, y), ((color[0] + 5 * x) % 256, (color[1] + 7 * y) % 256, color[2]))
    image.convert(mode).save(path, **save_kwargs)
    return path


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def scalar_steps(run_dir: Path, tag: str = "train/loss") -> list[int]:
    return [event.step for event in events(run_dir).Scalars(tag)]


def pixels_sha(path: Path) -> str:
    """A hash of an image's pixels alone: a result also holds the run's configuration, which names a
    resume's ``--ckpt_path`` and a run's directory, so equal images need not be equal files."""
    with Image.open(path) as image:
        return hashlib.sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes()).hexdigest()


def checkpoint(path: Path) -> dict:
    """A checkpoint as data (weights_only: ours need nothing else)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def user_error(run, capsys, *args: str) -> str:
    """Run the CLI expecting a user error: exit code 2 and exactly one ``nst_lightning`` line on
    stderr, which is returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nst_lightning")]
    assert len(lines) == 1, lines
    return lines[0]


@contextlib.contextmanager
def info_lines() -> Iterator[list[str]]:
    """The lines ``rank_zero_info`` logs inside the block (its logger does not propagate to pytest's
    caplog), as a list filled when the block ends."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # where rank_zero_info writes
    logger.addHandler(handler)
    lines: list[str] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(r.getMessage() for r in records)
