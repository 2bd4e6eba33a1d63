"""What a ``batch`` shows of its collection: ``summary.csv``, ``contact_sheet.jpg`` and, while it
runs, one progress bar over the jobs.

The two files are rebuilt from the jobs' records on disk (``job.json``), not from one process's memory, so
they are right whichever process wrote them last: a rerun, another shard of a SLURM array, a Ray
driver. Both are written atomically.
"""

from __future__ import annotations

import csv
import functools
import io
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from PIL import Image, ImageDraw, ImageOps

from nst_lightning.batch.jobs import RESULT, read_record
from nst_lightning.batch.plan import Job
from nst_lightning.inputs.sources import read_source
from nst_lightning.utilities.files import atomic_write

SUMMARY = "summary.csv"
CONTACT_SHEET = "contact_sheet.jpg"
COLUMNS = ["job", "content", "style", "status", "steps", "seconds", "loss", "content_loss", "style_loss", "path", "reason"]
MAX_SHEET_SIDE = 12000  # pixels: a sheet of thousands of jobs gets smaller cells, not a giant JPEG
MAX_CELL = 256
MIN_CELL = 48
BACKGROUND, EMPTY = (255, 255, 255), (224, 224, 224)


def status(out: Path, job: Job) -> dict[str, Any]:
    """A job's row: its record, else ``started`` (it has a checkpoint) or ``pending``."""
    record = read_record(out, job)
    if record is None:
        started = (out / job.name / "checkpoints" / "last.ckpt").is_file()
        record = {"status": "started" if started else "pending"}
    return {"job": job.name, "content": job.content, "style": job.style} | record


def write_summary(out: Path, jobs: Sequence[Job]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow(status(out, job))
    data = buffer.getvalue().encode()
    return atomic_write(out / SUMMARY, lambda handle: handle.write(data))


def write_contact_sheet(out: Path, jobs: Sequence[Job], result_filename: str = RESULT) -> Path:
    """A grid: the photos down the left, the paintings across the top, each job's result (its
    ``result_filename``) where its row and column meet (grey while it is not done)."""
    contents = list(dict.fromkeys(job.content for job in jobs))
    styles = list(dict.fromkeys(job.style for job in jobs))
    cell = max(MIN_CELL, min(MAX_CELL, MAX_SHEET_SIDE // (max(len(contents), len(styles)) + 1)))
    gap = max(2, cell // 32)
    pitch = cell + gap
    sheet = Image.new("RGB", ((len(styles) + 1) * pitch + gap, (len(contents) + 1) * pitch + gap), BACKGROUND)
    for column, style in enumerate(styles, start=1):
        _paste(sheet, _thumbnail_of_source(style, cell), column, 0, pitch, gap, cell)
    for row, content in enumerate(contents, start=1):
        _paste(sheet, _thumbnail_of_source(content, cell), 0, row, pitch, gap, cell)
    for job in jobs:
        result = out / job.name / result_filename
        image = _thumbnail(result.read_bytes(), cell) if result.is_file() else None
        _paste(sheet, image, styles.index(job.style) + 1, contents.index(job.content) + 1, pitch, gap, cell)
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=90)
    return atomic_write(out / CONTACT_SHEET, lambda handle: handle.write(buffer.getvalue()))


def _paste(sheet: Image.Image, image: Optional[Image.Image], column: int, row: int, pitch: int, gap: int, cell: int) -> None:
    x, y = gap + column * pitch, gap + row * pitch
    if image is None:
        ImageDraw.Draw(sheet).rectangle([x, y, x + cell - 1, y + cell - 1], fill=EMPTY)
        return
    sheet.paste(image, (x + (cell - image.width) // 2, y + (cell - image.height) // 2))


@functools.lru_cache(maxsize=256)
def _thumbnail_of_source(source: str, cell: int) -> Optional[Image.Image]:
    # Cached: the sheet is redrawn as jobs finish, and the inputs' thumbnails do not change.
    try:  # a URL comes from the download cache; an unreadable input leaves its cell grey
        return _thumbnail(read_source(source, "image"), cell)
    except Exception:
        return None


def _thumbnail(data: bytes, cell: int) -> Optional[Image.Image]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (cell, cell))  # JPEG: decode at a fraction of the size
            return ImageOps.contain(image.convert("RGB"), (cell, cell))
    except Exception:
        return None


class Progress:
    """One bar over the jobs: done/total, and an ETA from the times of the jobs finished in this
    run (skipped jobs take no time and do not count towards it)."""

    def __init__(self, total: int, done: int) -> None:
        from tqdm import tqdm

        self.started, self.timed = time.monotonic(), 0
        self.bar = tqdm(
            total=total, initial=done, unit="job", file=sys.stderr, dynamic_ncols=True,
            bar_format="batch: {n_fmt}/{total_fmt} jobs |{bar}| {desc}",
        )
        self.bar.set_description_str("ETA after the first job")

    def advance(self, jobs: int, label: str) -> None:
        self.timed += jobs
        per_job = (time.monotonic() - self.started) / self.timed
        left = self.bar.total - self.bar.n - jobs
        self.bar.set_description_str(f"{label}; ETA {_duration(per_job * left)}" if left else label, refresh=False)
        self.bar.update(jobs)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"
