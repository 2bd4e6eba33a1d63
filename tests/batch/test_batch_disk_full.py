"""A full disk during a batch, on a real tmpfs (when the tests run as root): the batch's own files
(``job.json``, ``summary.csv``) and a job's run that cannot write end the batch in one line naming the
file, with what is kept and that a rerun goes on; exit 2; no traceback, no temporary file left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nst_lightning.utilities.files import TMP_SUFFIX
from tests.batch.batching import batch, batch_process, summary
from tests.helpers import make_image

PAGE = 4096  # tmpfs gives files whole pages


@pytest.fixture
def disk(tmp_path):
    """A 2 MB tmpfs at tmp_path/disk."""
    path = tmp_path / "disk"
    path.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield path
    subprocess.run(["umount", str(path)], capture_output=True)


def fill(disk: Path, leave: int = PAGE) -> Path:
    """Fill ``disk`` but ``leave`` bytes: room for one small file (the batch's check that --out is
    writable), not for two."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    stats = os.statvfs(disk)
    assert stats.f_bavail * stats.f_frsize == leave
    return filler


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("nst_lightning")]
    assert len(lines) == 1, lines
    assert lines[0] == done.stderr.strip().splitlines()[-1]
    assert lines[0].endswith("rerun the same command, which skips the finished jobs and resumes the others from their checkpoints")
    return lines[0]


def temporaries(directory: Path) -> list[Path]:
    return list(directory.rglob(f"*{TMP_SUFFIX}"))


def test_an_out_with_no_room_at_all_is_refused_before_any_job(collection, disk, capsys):
    fill(disk, leave=0)
    capsys.readouterr()
    assert batch(out=str(disk / "styled")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nst_lightning")]
    said = f"nst_lightning: error: could not write into --out {disk / 'styled'}: No space left on device ("
    assert len(lines) == 1 and lines[0].startswith(said), lines
    assert list((disk / "styled").iterdir()) == []


@pytest.mark.slow
def test_a_job_record_that_does_not_fit(collection, disk):
    (collection / "photos" / "broken.jpg").write_text("not a JPEG")  # its fit writes nothing but its log
    filler = fill(disk)
    out = disk / "styled"
    done = batch_process(collection, "--contents", "photos/broken.jpg", "--styles", "s1.png", "--out", str(out))
    line = one_error_line(done)
    assert line.startswith(f"nst_lightning: error: could not write {out / 'broken__s1' / 'job.json'}: No space left on device ("), line
    assert temporaries(disk) == []
    filler.unlink()  # space freed: the same command goes on, and the job fails for its own reason
    assert batch(contents=("photos/broken.jpg",), styles=("s1.png",), out=str(out)) == 1
    assert "broken.jpg is not a readable image" in summary(out)[0]["reason"]


@pytest.mark.slow
def test_a_summary_that_does_not_fit_leaves_the_last_one_whole(collection, disk):
    # Sources under deep folders: the summary's row is over a page, so it needs two and has one.
    deep = collection.joinpath(*["d" * 250] * 8)
    deep.mkdir(parents=True)
    make_image(deep / "photo.png")
    make_image(deep / "painting.png", size=(30, 40), color=(10, 200, 200))
    args = ("--contents", str(deep / "photo.png"), "--styles", str(deep / "painting.png"), "--out", str(disk / "styled"))
    assert batch(*args[4:], contents=args[1:2], styles=args[3:4], out=args[5]) == 0  # the job, done
    written = (disk / "styled" / "summary.csv").read_bytes()
    assert len(written) > PAGE
    fill(disk)
    line = one_error_line(batch_process(collection, *args))
    assert line.startswith(f"nst_lightning: error: could not write {disk / 'styled' / 'summary.csv'}: No space left on device ("), line
    assert (disk / "styled" / "summary.csv").read_bytes() == written and temporaries(disk) == []


@pytest.mark.slow
def test_a_disk_that_fills_while_a_job_runs_stops_the_batch(collection, disk):
    args = ("--contents", "photos/p0.png", "photos/p1.png", "--styles", "s1.png", "--out", str(disk / "styled"))
    assert batch(out=str(disk / "styled"), contents=args[1:3], styles=args[4:5]) == 0  # both jobs done, 4 steps
    filler = fill(disk)
    # More steps: the first job resumes, and its checkpoint does not fit; the second would fail the same way.
    line = one_error_line(batch_process(collection, *args, "--trainer.max_steps", "8"))
    assert line.startswith("nst_lightning: error: job p0__s1: could not write ") and ": No space left on device (" in line, line
    assert temporaries(disk) == []
    assert json.loads((disk / "styled" / "p1__s1" / "job.json").read_text())["steps"] == 4  # not started
    filler.unlink()
    assert batch("--trainer.max_steps", "8", out=str(disk / "styled"), contents=args[1:3], styles=args[4:5]) == 0
    assert [row["steps"] for row in summary(disk / "styled")] == ["8", "8"]
    assert json.loads((disk / "styled" / "p0__s1" / "job.json").read_text())["resumed_from_step"] == 4
