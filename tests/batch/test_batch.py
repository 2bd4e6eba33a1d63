"""The ``batch`` command: a collection of photos x paintings, resumable, sharded, batched."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.__main__ import dispatch
from nst_lightning.batch.plan import Job, group_jobs, plan_jobs, shard, sources
from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.loss.total import batch_losses
from nst_lightning.model.module import StyleTransfer
from nst_lightning.run.launchers import parse_shard
from nst_lightning.utilities.errors import UserError
from tests import _forked as forked
from tests.batch.batching import batch, batch_lines, summary
from tests.helpers import DEBUG_CONFIG, REPO, checkpoint, make_image, scalar_steps

# ---- planning: sources, names, shares, groups --------------------------------------------------


def test_sources_take_folders_globs_list_files_and_yaml_lists(collection):
    (collection / "photos" / "notes.txt").write_text("not a photo")
    (collection / "list.txt").write_text("# mine\nphotos/p2.png\n\nbuiltin:tubingen\n")
    (collection / "list.yaml").write_text("- photos/p1.png\n- https://example.org/a/starry.jpg?x=1\n")
    folder = sources("photos", "--contents")
    assert folder.images == [f"photos/p{i}.png" for i in range(3)] and folder.skipped == ["photos/notes.txt"]
    assert sources("photos/p[01].png", "--contents").images == ["photos/p0.png", "photos/p1.png"]
    assert sources(str(collection / "list.txt"), "--contents").images == [str(collection / "photos/p2.png"), "builtin:tubingen"]
    assert sources("list.yaml", "--styles").images == ["photos/p1.png", "https://example.org/a/starry.jpg?x=1"]
    assert sources("[s1.png, s2.png]", "--styles").images == ["s1.png", "s2.png"]
    assert sources(["s1.png", "s2.png", "s1.png"], "--styles").images == ["s1.png", "s2.png"]  # each once
    (collection / "empty").mkdir()
    refusals = [("empty", "no images found"), ("nowhere/", "no such file"), ("[a.jpg", "no file matches"), ("photos/*.gif", "no file matches")]
    for bad, words in refusals:
        with pytest.raises(UserError, match=words):
            sources(bad, "--contents")


def test_job_names_are_readable_and_collisions_get_a_stable_hash():
    jobs = plan_jobs(["a/x.jpg", "b/x.jpg", "https://h/p/y.png?s=2"], ["builtin:starry_night", "z.jpg"])
    names = [job.name for job in jobs]
    assert len(set(names)) == 6
    assert names[4:] == ["y__starry_night", "y__z"]
    assert names[0].startswith("x-") and names[0].endswith("__starry_night")
    # The hash depends on the source alone, not on the other sources listed.
    assert plan_jobs(["c/q.jpg", "a/x.jpg", "b/x.jpg"], ["z.jpg"])[1].name == jobs[1].name


def test_shards_partition_the_jobs_for_every_count():
    rng = random.Random(0)
    for _ in range(20):
        jobs = plan_jobs([f"c{i}.jpg" for i in range(rng.randint(1, 9))], [f"s{i}.jpg" for i in range(rng.randint(1, 4))])
        sizes = {job.content: rng.choice([(30, 40), (40, 30)]) for job in jobs}
        groups = group_jobs(jobs, rng.randint(1, 4), lambda job: sizes[job.content])
        for count in range(1, 8):
            shares = [[job for group in shard(groups, i, count) for job in group] for i in range(count)]
            assert sorted(job.name for share in shares for job in share) == sorted(job.name for job in jobs)
            lengths = [len(shard(groups, i, count)) for i in range(count)]
            assert max(lengths) - min(lengths) <= 1
            shuffled = list(groups)
            rng.shuffle(shuffled)
            first = [job.name for job in shard(groups, 0, count)[0:1] for job in job]
            assert [job.name for job in shard(shuffled, 0, count)[0:1] for job in job] == first
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard("slurm", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    for bad in ["5/5", "x", "1/0"]:
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(UserError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("slurm", {})


def test_groups_hold_jobs_of_one_size_and_unreadable_ones_alone():
    jobs = [Job(f"j{i}", f"c{i}", "s") for i in range(7)]
    sizes = [(30, 40), (40, 30), (30, 40), None, (30, 40), (30, 40), (40, 30)]
    groups = group_jobs(jobs, 3, lambda job: sizes[int(job.name[1:])])
    assert [[job.name for job in group] for group in groups] == [["j0", "j2", "j4"], ["j1", "j6"], ["j3"], ["j5"]]


# ---- the command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_runs_every_pair_writes_summary_and_contact_sheet_and_a_rerun_does_nothing(collection, capsys):
    assert batch() == 0
    out = collection / "styled"
    rows = summary(out)
    assert [row["job"] for row in rows] == [f"p{c}__s{s}" for c in range(3) for s in (1, 2)]
    assert all(row["status"] == "done" and row["steps"] == "4" and float(row["loss"]) > 0 for row in rows)
    for row in rows:
        run = out / row["job"]
        assert Path(row["path"]) == run / "generated.png" and Image.open(run / "generated.png").size == (48, 36)
        assert (run / "config.yaml").is_file() and checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4
        assert scalar_steps(run) == [0, 1, 2, 3]
    sheet = Image.open(out / "contact_sheet.jpg")
    assert sheet.width < sheet.height  # 3 photos down (plus the paintings' row), 2 paintings across
    # The sheet's cell for p0 x s2 shows that result.
    cell = (sheet.width - 2) // 3
    assert np.asarray(sheet)[cell + cell // 2, 2 * cell + cell // 2].std() < 255
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".ckpt", ".png") or "tfevents" in p.name}
    capsys.readouterr()
    assert batch() == 0
    assert "6 jobs, 6 already done, 0 run(s) to go" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing optimised, nothing rewritten
    assert len(list(out.rglob("*tfevents*"))) == 6


@pytest.mark.slow
def test_a_bad_photo_fails_its_jobs_alone_and_the_batch_says_which(collection, capsys):
    (collection / "photos" / "broken.jpg").write_text("this is not a JPEG")
    (collection / "photos" / "notes.txt").write_text("left out: not named as an image")
    assert batch() == 1
    lines = batch_lines(capsys)
    assert "left out 1 file(s) not named as images: photos/notes.txt" in lines[0]
    failed = [line for line in lines if " failed: " in line]
    assert [line.split()[1] for line in failed] == ["broken__s1", "broken__s2"]
    assert all("photos/broken.jpg is not a readable image" in line for line in failed)
    rows = {row["job"]: row for row in summary(collection / "styled")}
    assert rows["broken__s1"]["status"] == "failed" and "not a readable image" in rows["broken__s1"]["reason"]
    assert sum(row["status"] == "done" for row in rows.values()) == 6
    assert not (collection / "styled" / "broken__s1" / "checkpoints").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--contents", "empty"], "--contents empty: no images found"),
        (["--contents", "missing/"], "--contents missing/: no such file"),
        (["--batch_size", "0"], "--batch_size 0: give a whole number"),
        (["--launcher", "pool"], "--launcher pool: choose one of sequential, ray"),
        (["--data.content", "x.jpg"], "--data.content is set by batch"),
        (["--shard", "3/3"], "--shard 3/3: I must be in 0..N-1"),
        (["--model.lr", "-1"], "model.lr"),
    ],
)
def test_batch_option_errors_are_one_line(collection, capsys, args, words):
    (collection / "empty").mkdir()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        base = ["batch", "--config", DEBUG_CONFIG, "--contents", "photos", "--styles", "s1.png", "--out", "styled"]
        dispatch(base + args)
    assert exit_info.value.code == 2
    lines = batch_lines(capsys)
    assert [line for line in lines if line.startswith("nst_lightning")] == [lines[-1]] and words in lines[-1], lines
    assert "Traceback" not in capsys.readouterr().err


def test_an_unwritable_out_is_refused_before_any_job(collection, capsys):
    (collection / "file").write_text("")
    assert batch("--out", "file/styled") == 2
    assert "--out" in batch_lines(capsys)[-1] and not (collection / "styled").exists()


def test_lbfgs_cannot_optimise_several_photos_together(collection, capsys):
    assert batch("--batch_size", "2", "--model.optimizer", "lbfgs") == 1
    assert all("L-BFGS's line search" in row["reason"] for row in summary(collection / "styled"))


# ---- several images per step -------------------------------------------------------------------


def test_batched_losses_give_each_image_its_separate_gradient():
    torch.manual_seed(0)
    model = StyleTransfer(weights="random", style_weight=5.0, tv_weight=0.5)
    photos = [torch.rand(1, 3, 32, 40) for _ in range(3)]
    paintings = [torch.rand(1, 3, 36, 36) for _ in range(3)]
    separate, targets = [], []
    for photo, painting in zip(photos, paintings):
        model.compute_targets(photo, painting)
        targets.append(model.targets[0])
        image = (photo * 0.5 + 0.25).requires_grad_()
        loss = model(image)["loss"]
        loss.backward()
        separate.append((loss.detach(), image.grad))
    model.targets = targets
    image = torch.cat([photo * 0.5 + 0.25 for photo in photos]).requires_grad_()
    losses = batch_losses(model.vgg(image), image, targets, model.loss_weights, model.style_statistic)
    losses["loss"].backward()
    for k, (loss, grad) in enumerate(separate):
        assert torch.allclose(losses[f"image_{k}/loss"], loss, rtol=1e-5)
        assert torch.allclose(image.grad[k : k + 1], grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item())
    assert torch.allclose(losses["loss"], sum(loss for loss, _ in separate), rtol=1e-5)


@pytest.mark.slow
def test_batch_size_3_gives_the_results_of_three_separate_runs(collection):
    assert batch("--model.init", "noise", "--trainer.max_steps", "6") == 0
    os.rename(collection / "styled", collection / "separate")
    assert batch("--model.init", "noise", "--trainer.max_steps", "6", "--batch_size", "3") == 0
    out = collection / "styled"
    assert len(list((out / "groups").iterdir())) == 2  # 3 photos of one size, in each of 2 styles
    for row in summary(out):
        assert row["status"] == "done" and row["steps"] == "6"
        grouped = np.asarray(Image.open(out / row["job"] / "generated.png"), dtype=np.int64)
        alone = np.asarray(Image.open(collection / "separate" / row["job"] / "generated.png"), dtype=np.int64)
        # The gradients agree to float rounding; Adam's normalised steps can turn a rounding
        # difference in a near-zero gradient into a full step on a few pixels, hence a quantile. In
        # 8-bit levels, whole numbers: a quantile of exactly 2 levels once failed "<= 2 / 255" by 1e-17.
        levels = np.abs(grouped - alone)
        assert levels.mean() < 0.51 and np.quantile(levels, 0.99) <= 2, (row["job"], levels.mean())


def test_photos_of_different_sizes_are_not_optimised_together(tmp_path):
    make_image(tmp_path / "a.png", size=(40, 30))
    make_image(tmp_path / "b.png", size=(30, 40))
    data = StyleTransferData(content=[str(tmp_path / "a.png"), str(tmp_path / "b.png")], style="builtin:starry_night", image_size=40)
    with pytest.raises(UserError, match="must have the same size"):
        data.load()
    with pytest.raises(UserError, match="one painting for all"):
        StyleTransferData(content=["a", "b"], style=["x", "y", "z"])


# ---- interruptions -----------------------------------------------------------------------------


def _run_batch_process(cwd: Path, *args: str) -> forked.Forked:
    command = ["batch", "--config", DEBUG_CONFIG, "--contents", "photos", "--styles", "s1.png", "s2.png", "--out", "styled", *args]
    return forked.nst_lightning(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=os.environ | {"PYTHONPATH": str(REPO)})


def _one_photo(collection: Path) -> None:
    """Only p0 (jobs p0__s1, p0__s2): Ctrl-C's test stops the second job and resumes it; the other photos'
    jobs would only add runs of 40 steps to the rerun."""
    for name in ("p1.png", "p2.png"):
        (collection / "photos" / name).unlink()


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_batch_killed_with_sigkill_finishes_on_rerun_with_every_step_once(collection):
    steps = ["--trainer.max_steps", "24", "--checkpoint.every_n_train_steps", "1", "--image_logger.every_n_steps", "100"]
    out = collection / "styled"
    process = _run_batch_process(collection, *steps)
    second = out / "p0__s2" / "checkpoints" / "last.ckpt"
    try:
        _wait_for(lambda: second.is_file() or process.poll() is not None)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = checkpoint(second)["global_step"]
    assert 0 < killed_at < 24
    process = _run_batch_process(collection, *steps)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "1 already done" in err
    rows = summary(out)
    assert all(row["status"] == "done" and row["steps"] == "24" for row in rows)
    record = json.loads((out / "p0__s2" / "job.json").read_text())
    assert record["resumed_from_step"] == killed_at  # resumed from its last checkpoint, not restarted
    for row in rows:
        run = out / row["job"]
        assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 24
        logged = set(scalar_steps(run))
        # Every step in TensorBoard (a SIGKILL in the instant after a checkpoint, before the event
        # file is flushed, can lose the checkpointed step's own point: StepCheckpoint).
        assert logged <= set(range(24)) and len(logged) >= 23 and set(range(killed_at, 24)) <= logged, row["job"]
    assert json.loads((out / "p0__s1" / "job.json").read_text())["resumed_from_step"] == 0


# ---- Ray -------------------------------------------------------------------------------------------


def test_an_unreachable_ray_address_is_one_line_within_seconds(collection, capsys):
    pytest.importorskip("ray")
    started = time.monotonic()
    assert batch("--launcher", "ray", "--ray_address", "127.0.0.1:9") == 2
    assert time.monotonic() - started < 30
    line = batch_lines(capsys)[-1]
    assert line.startswith("nst_lightning: error: --ray_address 127.0.0.1:9: no Ray cluster answers there"), line


@pytest.mark.slow
def test_ray_runs_the_batch_and_retries_a_killed_worker_from_its_checkpoint(collection):
    pytest.importorskip("ray")
    # One photo's two jobs: Ray runs one job at a time here (each takes the machine's cores), and the other
    # photos' four only added runs to wait for (26 s alone, ~190 s beside the suite's other tests).
    _one_photo(collection)
    steps = ["--trainer.max_steps", "16", "--checkpoint.every_n_train_steps", "1", "--image_logger.every_n_steps", "100"]
    out = collection / "styled"
    process = _run_batch_process(collection, "--launcher", "ray", *steps)
    first = out / "p0__s1" / "checkpoints" / "last.ckpt"
    try:
        _wait_for(lambda: first.is_file() or process.poll() is not None, timeout=180)
        worker = json.loads((out / "p0__s1" / "run.lock").read_text())["pid"]
        assert worker != process.pid  # the job runs in a Ray worker, not in the driver
        os.kill(worker, signal.SIGKILL)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    rows = summary(out)
    assert all(row["status"] == "done" and row["steps"] == "16" for row in rows), rows
    record = json.loads((out / "p0__s1" / "job.json").read_text())
    assert record["resumed_from_step"] > 0  # the retry went on from the killed worker's checkpoint
    logged = set(scalar_steps(out / "p0__s1"))
    assert logged <= set(range(16)) and len(logged) >= 15 and set(range(record["resumed_from_step"], 16)) <= logged
    assert (out / "contact_sheet.jpg").is_file()


@pytest.mark.slow
def test_a_job_running_in_another_process_is_left_to_it(collection, capsys):
    from nst_lightning.outputs.run_lock import RunLock

    lock = RunLock(collection / "styled" / "p1__s2").acquire()  # as a twin batch running that job would hold it
    try:
        assert batch() == 0
    finally:
        lock.release()
    assert "1 job(s) are running in another process (p1__s2)" in capsys.readouterr().err
    rows = {row["job"]: row["status"] for row in summary(collection / "styled")}
    assert rows.pop("p1__s2") == "pending" and set(rows.values()) == {"done"}
    assert batch() == 0 and summary(collection / "styled")[3]["status"] == "done"


def test_without_ray_the_ray_launcher_says_how_to_install_it(collection, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    assert batch("--launcher", "ray") == 2
    assert batch_lines(capsys)[-1] == 'nst_lightning: error: --launcher ray needs Ray: pip install -e ".[ray]" (or pip install ray)'


@pytest.mark.slow
def test_ctrl_c_stops_the_running_job_with_a_checkpoint_then_the_batch(collection):
    _one_photo(collection)
    steps = ["--trainer.max_steps", "40", "--checkpoint.every_n_train_steps", "1"]
    out = collection / "styled"
    process = _run_batch_process(collection, *steps)
    try:
        _wait_for(lambda: (out / "p0__s2" / "checkpoints" / "last.ckpt").is_file() or process.poll() is not None)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "batch: stopped by SIGINT; rerun the same command to go on"
    stopped = {row["job"]: row for row in summary(out)}["p0__s2"]
    assert stopped["status"] == "stopped" and 0 < int(stopped["steps"]) < 40 and "after" in stopped["reason"]
    process = _run_batch_process(collection, *steps)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert json.loads((out / "p0__s2" / "job.json").read_text())["resumed_from_step"] == int(stopped["steps"])
    assert all(row["status"] == "done" and row["steps"] == "40" for row in summary(out))
