"""``python -m nst_lightning video`` end to end on tiny clips (random weights, a few steps): the frames,
the video with its timing and sound, the temporal loss after the first frame, shots, reruns, and every
bad input as one line with nothing written."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from nst_lightning.__main__ import dispatch
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, events, make_image, pixels_sha
from tests.video.clips import declared_size_gif, make_pan_clip, pan_frames, png_clip

SMALL = ["--config", DEBUG_CONFIG, "--data.image_size", "64", "--checkpoint.every_n_train_steps", "1", "--image_logger.every_n_steps", "100"]


def video(*args: str) -> int:
    try:
        dispatch(["video", *SMALL, *args])
    except SystemExit as done:
        return done.code
    raise AssertionError("the command returned without an exit code")


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nst_lightning")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def clip(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "style.png", (48, 48), color=(10, 200, 90))
    return make_pan_clip(tmp_path / "pan.mp4", count=5)


@pytest.mark.slow
def test_a_clip_becomes_frames_and_a_video_with_its_timing_and_sound(clip, tmp_path):
    assert video("--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "2", "--video.preview_every", "2") == 0
    out = tmp_path / "styled"
    frames = sorted((out / "frames").iterdir())
    assert [f.name for f in frames] == [f"{n:06d}.png" for n in range(1, 6)]
    assert Image.open(frames[0]).size == (64, 48)
    records = [json.loads((out / "runs" / f"frame_{n:06d}" / "frame.json").read_text()) for n in range(1, 6)]
    # The first frame is a still run of the fit's max_steps (4 in debug.yaml); the others start from
    # the previous result, with the temporal loss, for --video.frame_steps.
    assert records[0]["steps"] == 4 and "temporal_loss" not in records[0] and records[0]["trusted_fraction"] is None
    assert all(r["steps"] == 2 and r["temporal_loss"] > 0 and 0.8 < r["trusted_fraction"] <= 1 for r in records[1:])
    # While a frame runs it has its checkpoint; once done, only its result, record, config and events.
    assert not any((out / "runs").glob("*/checkpoints")) and not any((out / "runs").glob("*/previous.pt"))
    assert events(out / "runs" / "frame_000003").Scalars("train/temporal_loss")
    # The clip's own log: per frame its losses; previews of the first frame and every 2nd, with masks.
    clip_log = events(out / "tensorboard")
    assert [e.step for e in clip_log.Scalars("frame/style_loss")] == [1, 2, 3, 4, 5]
    assert [e.step for e in clip_log.Scalars("frame/temporal_loss")] == [2, 3, 4, 5]
    assert [e.step for e in clip_log.Images("frame/result")] == [1, 2, 4]
    assert [e.step for e in clip_log.Images("frame/consistency_mask")] == [2, 4]
    with av.open(str(out / "pan.mp4")) as container:
        picture, sound = container.streams.video[0], container.streams.audio[0]
        assert (picture.codec_context.name, picture.codec_context.pix_fmt, sound.codec_context.name) == ("h264", "yuv420p", "aac")
        times = [frame.time for frame in container.decode(video=0)]
    assert times == pytest.approx([n / 12 for n in range(5)], abs=1e-3)  # the input's 12 fps
    assert float(sound.duration * sound.time_base) == pytest.approx(5 / 12, abs=0.05)  # trimmed to the picture


def test_the_video_is_written_with_the_permissions_of_every_other_output(clip, tmp_path):
    previous = os.umask(0o022)
    try:
        assert video("--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--frames", "0:2", "--video.frame_steps", "1") == 0
    finally:
        os.umask(previous)
    out = tmp_path / "styled"
    written = [out / "pan.mp4", out / "clip.json", out / "frames" / "000001.png", out / "runs" / "frame_000001" / "frame.json"]
    # 0644 as open() makes it under this umask: others may read the video as they read the frames.
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: "0o644" for p in written}


@pytest.mark.slow
def test_each_frames_trainer_and_model_are_freed_when_the_frame_ends(clip, tmp_path):
    import gc

    from lightning.pytorch import Trainer

    from nst_lightning.model.module import StyleTransfer

    def fits() -> list:
        return [o for o in gc.get_objects() if type(o) in (StyleTransfer, Trainer)]

    gc.collect()
    earlier = {id(o) for o in fits()}  # an earlier test's, still referenced: not this command's
    gc.disable()  # Python's own collection frees reference cycles at its pace: every 20 frames or so, here
    try:
        assert video("--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--frames", "0:3", "--video.frame_steps", "1") == 0
        alive = collections.Counter(type(o).__name__ for o in fits() if id(o) not in earlier)
    finally:
        gc.enable()
    # Before, every frame's stayed until then (55 MB at 32 px, mostly VGG19): 2.7 GB after 100 frames. The
    # last frame's fit is still referenced when the command ends (from outside Python's objects).
    assert alive["StyleTransfer"] <= 1 and alive["Trainer"] <= 1, alive


@pytest.mark.slow
def test_later_frames_follow_the_pan_and_a_cut_starts_a_new_shot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "style.png", (48, 48), color=(10, 200, 90))
    make_pan_clip(tmp_path / "cut.mp4", count=5, cut_at=3, audio=False)
    assert video("--input", "cut.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1", "--out_format", "gif") == 0
    out = tmp_path / "styled"
    manifest = json.loads((out / "clip.json").read_text())
    assert manifest["shots"] == [4]  # frame 4 (1-based) is the first of the Starry Night
    shot_start = json.loads((out / "runs" / "frame_000004" / "frame.json").read_text())
    assert "temporal_loss" not in shot_start and shot_start["steps"] == 4
    assert "temporal_loss" in json.loads((out / "runs" / "frame_000005" / "frame.json").read_text())
    with Image.open(out / "cut.gif") as gif:
        assert gif.n_frames == 5


@pytest.mark.slow
def test_a_rerun_skips_finished_frames_and_more_frames_are_refused(clip, tmp_path, capsys):
    args = ["--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1", "--frames", "0:3"]
    assert video(*args) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "styled" / "frames").iterdir()}
    assert video(*args) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "styled" / "frames").iterdir()} == before
    capsys.readouterr()
    assert video(*args[:-1], "0:4") == 2
    line = error_line(capsys)
    assert "holds a video run of another clip or with other options (frames differ)" in line and "another --out" in line


def _video_process(cwd: Path, out: str, **popen: Any) -> forked.Forked:
    command = ["video", *SMALL, "--input", "pan.mp4", "--style", "style.png", "--out", out, "--trainer.max_steps", "12", "--video.frame_steps", "12"]
    return forked.nst_lightning(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=os.environ | {"PYTHONPATH": str(REPO)}, **popen)


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _stop_at(cwd: Path, frame: int, stop: signal.Signals) -> subprocess.CompletedProcess:
    """The clip into ``cwd/stopped``, stopped by ``stop`` once frame ``frame`` has its first checkpoint."""
    process = _video_process(cwd, "stopped")
    checkpoint = cwd / "stopped" / "runs" / f"frame_{frame:06d}" / "checkpoints" / "last.ckpt"
    try:
        _wait_for(lambda: checkpoint.is_file() or process.poll() is not None)
        process.send_signal(stop)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (cwd / "stopped" / "frames" / f"{frame:06d}.png").exists() and checkpoint.is_file()
    return subprocess.CompletedProcess(process.args, process.returncode, "", err)


@pytest.mark.slow
def test_a_stopped_clip_resumes_to_the_same_frames_as_an_uninterrupted_one(clip, tmp_path):
    whole = _video_process(tmp_path, "whole")
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    # Ctrl-C in frame 3: a checkpoint at a step boundary and one line; then SIGKILL in frame 4 of the rerun.
    stopped = _stop_at(tmp_path, 3, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    # One line says it (the bar's redraws share the pipe, separated by carriage returns).
    [last] = [line for line in stopped.stderr.splitlines() if line.startswith("video: stopped")]
    # The signal lands after however many steps the machine made: "1 step" or "N steps".
    assert re.fullmatch(r"video: stopped by SIGINT after (1 step|\d+ steps) of frame 3 of 5, its checkpoint saved; "
                        r"rerun the same command to continue from there", last), last
    assert _stop_at(tmp_path, 4, signal.SIGKILL).returncode == -signal.SIGKILL
    resumed = _video_process(tmp_path, "stopped")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    for n in range(1, 6):
        assert pixels_sha(tmp_path / "stopped" / "frames" / f"{n:06d}.png") == pixels_sha(tmp_path / "whole" / "frames" / f"{n:06d}.png"), n


@pytest.mark.slow
def test_ctrl_c_before_a_frames_first_checkpoint_says_that_nothing_of_it_was_saved(clip, tmp_path):
    # Started with Ctrl-C ignored, as a process that had Lightning catch a Ctrl-C passes it on (it then
    # ignored this Ctrl-C and ran the clip to its end): the program takes Ctrl-C back.
    process = _video_process(tmp_path, "early", sigint_ignored=True)
    run = tmp_path / "early" / "runs" / "frame_000001"
    try:
        # The frame's fit has started (its log is open) and, about a second before its first step
        # ends, has no checkpoint yet: Ctrl-C now stops it while it starts.
        _wait_for(lambda: (run / "frame.log").is_file() or process.poll() is not None)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    [line] = [line for line in err.splitlines() if line.startswith("video: stopped")]
    if (run / "checkpoints" / "last.ckpt").is_file():  # the signal came late, in the first step: saved there
        assert line.endswith("of frame 1 of 5, its checkpoint saved; rerun the same command to continue from there"), line
    else:
        # What the command says is what the frame's own log says, and what is on disk.
        assert "nothing was saved" in (run / "frame.log").read_text()
        assert line == ("video: stopped by SIGINT outside training in frame 1 of 5, before its first checkpoint: nothing of "
                        "that frame was saved; rerun the same command to start it again"), line


def _text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--input", "notes.mp4"], "--input"),
        (["--input", "missing.mp4"], "--input"),
        (["--input", "pan.mp4", "--frames", "10:12"], "--frames"),
        (["--input", "pan.mp4", "--frames", "x"], "--frames"),
        (["--input", "pan.mp4", "--data.content", "a.png"], "--data.content is set by video for each frame"),
        (["--input", "pan.mp4", "--data.regions", "[]"], "--data.regions: a video has no per-frame masks yet"),
        (["--input", "pan.mp4", "--model.style_weight", "-1"], "model.style_weight"),
        (["--input", "pan.mp4", "--video.frame_steps", "0"], "--video.frame_steps 0: give a positive number of steps"),
        (["--input", "pan.mp4", "--video.temporal_weight", "-2"], "--video.temporal_weight -2"),
        (["--input", "pan.mp4", "--video.crf", "60"], "--video.crf 60"),
        (["--input", "pan.mp4", "--video.temporal_frames", "2,4"], "--video.temporal_frames 2,4: give whole numbers"),
    ],
    ids=["not-a-video", "missing", "past-the-end", "bad-range", "own-option", "regions", "bad-fit-option", "steps", "weight", "crf",
         "temporal-frames"],
)
def test_bad_input_is_one_line_and_nothing_is_written(clip, tmp_path, capsys, args, words):
    _text_file(tmp_path)
    capsys.readouterr()
    assert video(*args, "--style", "style.png", "--out", "styled") == 2
    assert words in error_line(capsys)
    assert not (tmp_path / "styled").exists()


def _peak_of(command: list[str], cwd: Path) -> tuple[int, str, float]:
    """Run ``command``: its exit code, stderr, and its own peak resident memory in MB (``wait4``)."""
    process = forked.nst_lightning(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env=os.environ | {"PYTHONPATH": str(REPO)})
    _, err = process.communicate(timeout=300)
    return process.returncode, err, process.peak_rss_mb


@pytest.mark.parametrize("make", [lambda path: declared_size_gif(path / "bomb.gif", 16000, 12000),
                                  lambda path: png_clip(path / "bomb.mov", [(16000, 12000)] * 2)], ids=["gif-85-bytes", "png-in-mov-47-kB"])
@pytest.mark.slow
def test_a_clip_declaring_a_huge_picture_is_refused_before_it_is_decoded(clip, tmp_path, make):
    bomb = make(tmp_path)
    _text_file(tmp_path)
    command = ["video", *SMALL, "--style", "style.png", "--out", "styled", "--input"]
    code, err, peak = _peak_of([*command, bomb.name], tmp_path)
    assert code == 2, err
    [line] = [line for line in err.splitlines() if line.startswith("nst_lightning")]
    assert line.startswith(f"nst_lightning: error: --input: {bomb.name} declares 16000x12000 pixels in only ") and "decompression bomb" in line
    assert not (tmp_path / "styled").exists()
    # Refused from its headers: as much memory as refusing a text file (decoding one frame takes 0.6-1.3 GB more).
    code, _, reference = _peak_of([*command, "notes.mp4"], tmp_path)
    assert code == 2 and peak < reference + 100, (peak, reference)


def test_reading_a_clip_holds_a_constant_number_of_frames_whatever_its_length(tmp_path):
    import tracemalloc

    from nst_lightning.video.clip import VideoOptions, extract
    from nst_lightning.video.layout import ClipDirectory

    clip = make_pan_clip(tmp_path / "long.mp4", count=200, size=(32, 24), audio=False)
    peaks = {}
    for count in (20, 200):
        out = tmp_path / f"first_{count}"
        tracemalloc.start()  # numpy's arrays are traced: a frame kept is 147 kB at 256x192
        try:
            manifest = extract(VideoOptions(input=str(clip), style="unused", out=out, stop=count), ClipDirectory(out), 256, {})
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert manifest.count == count and len(list((out / "input").iterdir())) == count
    # Streamed: the same peak for 200 frames as for 20 (every frame kept: 26 MB more).
    assert peaks[200] - peaks[20] < 2e6, peaks


def test_an_out_folder_holding_other_files_is_refused(clip, tmp_path, capsys):
    (tmp_path / "styled").mkdir()
    (tmp_path / "styled" / "holiday.jpg").write_bytes(b"mine")
    capsys.readouterr()
    assert video("--input", "pan.mp4", "--style", "style.png", "--out", "styled") == 2
    assert "--out" in error_line(capsys) and sorted(p.name for p in (tmp_path / "styled").iterdir()) == ["holiday.jpg"]


@pytest.mark.slow
def test_a_folder_of_frames_at_its_own_rate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "style.png", (48, 48), color=(10, 200, 90))
    (tmp_path / "shots").mkdir()
    for i, pixels in enumerate(pan_frames(3)):
        Image.fromarray(pixels).save(tmp_path / "shots" / f"f{i + 1}.png")
    assert video("--input", "shots", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1", "--video.fps", "8") == 0
    with av.open(str(tmp_path / "styled" / "shots.mp4")) as container:
        assert [frame.time for frame in container.decode(video=0)] == pytest.approx([0, 1 / 8, 2 / 8], abs=1e-3)
        assert not container.streams.audio
    assert Fraction(json.loads((tmp_path / "styled" / "clip.json").read_text())["fps"]) == 8
    assert np.asarray(Image.open(tmp_path / "styled" / "frames" / "000003.png")).shape == (48, 64, 3)


def test_stylize_video_is_the_command_in_one_call(clip, tmp_path):
    from nst_lightning import UserError, stylize_video

    path = stylize_video("pan.mp4", "style.png", "styled", config=DEBUG_CONFIG, frames="0:2", frame_steps=1, image_size=64, style_weight=5.0)
    assert path == tmp_path / "styled" / "pan.mp4" and len(list((tmp_path / "styled" / "frames").iterdir())) == 2
    assert json.loads((tmp_path / "styled" / "runs" / "frame_000002" / "frame.json").read_text())["steps"] == 1
    with pytest.raises(UserError, match="unknown option colour="):
        stylize_video("pan.mp4", "style.png", "other", colour=1)
    with pytest.raises(UserError, match="frames"):
        stylize_video("pan.mp4", "style.png", "other", config=DEBUG_CONFIG, frames="9:12")
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_raft_flow_from_a_weights_file(clip, tmp_path, capsys):
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft.pth")  # untrained: the path, not the accuracy
    assert video("--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--frames", "0:2", "--video.frame_steps", "1",
                 "--video.flow", "raft", "--video.flow_weights", "raft.pth") == 0
    assert sorted(p.name for p in (tmp_path / "styled" / "flow").iterdir()) == ["000001_000002_raft.npy", "000002_000001_raft.npy"]
    torch.save({"not": torch.zeros(1)}, tmp_path / "other.pth")
    capsys.readouterr()
    assert video("--input", "pan.mp4", "--style", "style.png", "--out", "other", "--video.flow", "raft", "--video.flow_weights", "other.pth") == 2
    assert "not the weights of torchvision's raft_large or raft_small" in error_line(capsys)
    assert video("--input", "pan.mp4", "--style", "style.png", "--out", "other", "--video.flow", "raft") == 2
    assert "--video.flow raft needs its weights" in error_line(capsys)


@pytest.fixture
def two_shots(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    make_image(tmp_path / "style.png", (48, 48), color=(10, 200, 90))
    return make_pan_clip(tmp_path / "cut.mp4", count=4, cut_at=2)


@pytest.mark.slow
def test_shots_in_shares_and_the_last_share_writes_the_video(two_shots, tmp_path, capsys):
    args = ["--input", "cut.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1"]
    assert video(*args, "--shard", "1/2") == 0  # the second shot: frames 3 and 4
    out = tmp_path / "styled"
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000003.png", "000004.png"] and not (out / "cut.mp4").exists()
    assert "2 frame(s) of other shares are not" in capsys.readouterr().err
    assert video(*args, "--shard", "0/2") == 0
    assert len(list((out / "frames").iterdir())) == 4 and (out / "cut.mp4").is_file()


@pytest.mark.slow
def test_shots_run_in_parallel_on_ray(two_shots, tmp_path):
    pytest.importorskip("ray")
    command = ["video", *SMALL, "--input", "cut.mp4", "--style", "style.png", "--out", "styled",
               "--video.frame_steps", "1", "--launcher", "ray", "--cpus_per_job", "1"]
    driver = forked.nst_lightning(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=os.environ | {"PYTHONPATH": str(REPO)})
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    out = tmp_path / "styled"
    pids = [json.loads((out / "runs" / f"frame_{n:06d}" / "frame.json").read_text())["pid"] for n in range(1, 5)]
    # Each shot ran in a Ray worker, not in the command's process; a shot's frames in one worker.
    assert driver.pid not in pids and pids[0] == pids[1] and pids[2] == pids[3]
    assert (out / "cut.mp4").is_file()


@pytest.mark.slow
def test_long_term_consistency_holds_each_pixel_to_its_nearest_earlier_frame(clip, tmp_path):
    import torch

    args = ["--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1", "--frames", "0:4"]
    # The clip, then frame 4's targets made again as the clip made them (a done frame's are removed).
    assert video(*args, "--video.temporal_frames", "1,2,4") == 0
    from nst_lightning.video.flow import FlowCache
    from nst_lightning.video.frame_run import prepare
    from nst_lightning.video.layout import ClipDirectory

    clip_dir = ClipDirectory(tmp_path / "styled")
    prepare(clip_dir, 4, FlowCache(clip_dir.flow), earlier=(1, 2, 4), shot_first=1)
    saved = torch.load(clip_dir.run(4) / "previous.pt", weights_only=True)
    assert saved["previous"].shape == (2, 3, 48, 64) and saved["mask"].shape == (2, 1, 48, 64)  # frames 3 and 2 (no frame 0)
    # Nearest first, never twice: the weights of a pixel sum to at most 1, and frame 2 only counts
    # where frame 3 is not trusted (the strip a 2 px pan a frame brings into view).
    assert saved["mask"].sum(0).max() <= 1 and (saved["mask"][1] > 0).float().mean() < 0.1
    assert saved["mask"][0].mean() > 0.9


@pytest.mark.slow
def test_the_paintings_style_targets_are_computed_once_for_the_clip(clip, tmp_path):
    import torch

    args = ["--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--video.frame_steps", "1", "--frames", "0:2"]
    assert video(*args) == 0
    out = tmp_path / "styled"
    cached = torch.load(out / "style" / "64.pt", weights_only=True)
    assert sorted(cached) == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    second = json.loads((out / "runs" / "frame_000002" / "frame.json").read_text())["style_loss"]
    # Frame 2 read them: with the cached Grams halved, its run measures another style loss.
    torch.save({name: gram / 2 for name, gram in cached.items()}, out / "style" / "64.pt")
    (out / "runs" / "frame_000002" / "frame.json").unlink()
    assert video(*args) == 0
    assert json.loads((out / "runs" / "frame_000002" / "frame.json").read_text())["style_loss"] != pytest.approx(second, rel=1e-3)


@pytest.mark.slow
def test_frames_run_in_tiles_with_the_temporal_loss(clip, tmp_path):
    # The path a 4K clip takes (tiles, chosen here by --model.tile_size; --model.max_memory_gb chooses them
    # the same way): the temporal term is per pixel, on the whole image, as total variation is.
    args = ["--input", "pan.mp4", "--style", "style.png", "--out", "styled", "--frames", "0:2", "--video.frame_steps", "2"]
    assert video(*args, "--model.tile_size", "32") == 0
    run = tmp_path / "styled" / "runs" / "frame_000002"
    assert "tile_size: 32" in (run / "config.yaml").read_text()
    assert json.loads((run / "frame.json").read_text())["temporal_loss"] > 0
