"""Rerunning a batch with other options: more steps extend the finished jobs, ``--result.filename``
jobs count as done, and a bad fit option is refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.batch.batching import batch, summary
from tests.helpers import checkpoint, scalar_steps


def test_a_larger_max_steps_resumes_finished_jobs_to_it_and_a_smaller_one_keeps_them(collection, capsys):
    one = {"contents": ("photos/p0.png",), "styles": ("s1.png",)}
    out, run = collection / "styled", collection / "styled" / "p0__s1"
    assert batch("--trainer.max_steps", "4", **one) == 0
    before = np.asarray(Image.open(run / "generated.png"))
    capsys.readouterr()
    # Before: "1 already done", the new max_steps ignored, the result still after 4 steps.
    assert batch("--trainer.max_steps", "8", **one) == 0
    err = capsys.readouterr().err
    assert "1 jobs, 0 already done, 1 run(s) to go" in err and "(1 finished with fewer steps: resumed from their checkpoints to 8)" in err
    record = json.loads((run / "job.json").read_text())
    assert (record["status"], record["steps"], record["resumed_from_step"]) == ("done", 8, 4)
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 8
    assert scalar_steps(run) == list(range(8))  # steps 4-7 added to 0-3: the same optimisation, longer
    assert not np.array_equal(np.asarray(Image.open(run / "generated.png")), before)
    assert summary(out)[0]["steps"] == "8"
    # Fewer steps than a job has: it is kept (its result cannot be un-optimised), nothing rewritten.
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    capsys.readouterr()
    assert batch("--trainer.max_steps", "6", **one) == 0
    assert "1 jobs, 1 already done, 0 run(s) to go" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp and summary(out)[0]["steps"] == "8"


@pytest.mark.parametrize("batch_size", ["1", "2"])
def test_jobs_with_a_result_filename_count_as_done(collection, capsys, batch_size):
    two = {"contents": ("photos/p0.png", "photos/p1.png"), "styles": ("s1.png",)}
    assert batch("--result.filename", "result.jpg", "--batch_size", batch_size, **two) == 0
    out = collection / "styled"
    rows = summary(out)
    assert [row["status"] for row in rows] == ["done", "done"]
    for row in rows:
        assert row["path"] == str(out / row["job"] / "result.jpg") and Image.open(row["path"]).format == "JPEG"
        assert not (out / row["job"] / "generated.png").exists()
    sheet = np.asarray(Image.open(out / "contact_sheet.jpg"))
    cell = (sheet.shape[1] - 2) // 2
    assert sheet[cell + cell // 2, cell + cell // 2].std() < 255 and not (sheet[cell + 4 : 2 * cell - 4, cell + 4 : 2 * cell - 4] == 224).all()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".ckpt", ".jpg") and p.name != "contact_sheet.jpg"}
    capsys.readouterr()
    # Before: every rerun ran them again ("0 already done"), looking for generated.png.
    assert batch("--result.filename", "result.jpg", "--batch_size", batch_size, **two) == 0
    assert "2 jobs, 2 already done, 0 run(s) to go" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model.lr", "-1"], 'Parser key "model.lr"'),  # refused by the parser
        (["--model.init", "image"], "--model.init image needs --model.init_image PATH"),  # by the model's options
        (["--model.weights", "missing.pth"], "missing.pth"),  # when the model is built
        (["--trainer.max_steps", "0"], "--trainer.max_steps must be a positive number"),
        (["--trainer.devices", "0"], "Trainer(devices='0')"),  # by the Trainer
        (["--trainer.strategy", "bogus"], "ValueError: You selected an invalid strategy name"),  # by Lightning, not as a UserError
        (["--result.filename", "/tmp/everyone.png"], "--result.filename /tmp/everyone.png: each job of a batch (frame of a video) writes"),
    ],
)
def test_a_bad_fit_option_is_refused_before_anything_is_written(collection, capsys, args, words):
    capsys.readouterr()
    assert batch(*args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("batch:", "nst_lightning"))]
    assert len(lines) == 1 and lines[0].startswith("nst_lightning: error: ") and words in lines[0], lines
    assert "Traceback" not in err and "jobs |" not in err  # no progress bar either: no job started
    assert not (collection / "styled").exists()  # before: a job directory, summary.csv and the sheet
