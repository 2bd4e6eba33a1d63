"""The page's clips: each a real ``video`` command (``python -m nst_lightning video``) in a process of its
own, in a directory of ``--runs`` that the server names (``clip-<time>-<token>``), started from the page's
run thread, so that a clip waits for the run before it and holds the one run slot as a photo's run does.

Why a process and not ``stylize_video()`` in this one: the ui room does not import the video room (siblings
in a layer, pyproject.toml's contract), and the command is the video machinery whole, nothing re-made here:
its checks (a file that is not a clip is one line before anything is written), its frames each a ``fit``
held to the one before by optical flow, its encoding with the clip's timing and sound, and its resume. A
Stop is the command's Ctrl-C (SIGINT: the frame in progress saves its checkpoint); Continue runs the same
command again, which skips the finished frames and resumes that one. What the clip's runs hold in memory
goes with the process.

What the page shows is read from the clip's directory as the command writes it (``video/layout.py``):
``clip.json`` (how many frames), ``frames/`` (each finished frame), ``runs/frame_N/frame.json`` (its seconds).

No gradio here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from nst_lightning.ui.live import close_channel, open_channel
from nst_lightning.ui.runner import ERROR_PREFIX, LOG, RECORD, in_run_thread, write_record
from nst_lightning.ui.runs import CLIP_NAME, Runs, check_upload, keep_input, link_or_copy
from nst_lightning.utilities.errors import UserError, param

PREFIX = "clip-"
OUT = "out"  # the video command's --out, inside the clip's run directory
STEM = "clip"  # the clip is kept as inputs/clip.<its suffix>, so its video is out/clip.mp4
SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")
# Set by the command for each frame: taken out of the server's fit options (video refuses them).
FRAME_OWN = ("--data.content", "--data.style", "--model.init_image")
POLL_S = 0.2


@dataclass
class ClipRun:
    directory: Path
    args: list[str]  # the video command's options (after ``video``)
    new: bool = False  # made by this request: removed again if refused before its first frame

    @property
    def out(self) -> Path:
        return self.directory / OUT


@dataclass
class ClipProgress:
    """Where a clip is: ``done`` of ``count`` frames (None until its frames are read), the finished frames'
    files in order, and the seconds each took."""

    done: int = 0
    count: Optional[int] = None
    frames: list[Path] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def eta(self, first_steps: int, later_steps: int) -> Optional[float]:
        """Seconds left: the later frames at the mean of those timed (the first, a still run of more steps,
        counts by its steps until a later one is timed); None before any frame is done."""
        if self.count is None or not self.seconds:
            return None
        later = self.seconds[1:] or [self.seconds[0] * later_steps / max(first_steps, 1)]
        return (self.count - self.done) * sum(later) / len(later)


@dataclass
class ClipOutcome:
    code: int  # the command's exit code: 0 done, 2 refused (error is its line), 128 + N stopped
    error: Optional[str]
    video: Optional[Path]
    progress: ClipProgress

    @property
    def stopped(self) -> bool:
        return self.code > 128


def fresh(runs: Runs, clip: str, painting: str, options: Sequence[str]) -> ClipRun:
    """A new clip run of the upload ``clip`` in the style of ``painting`` (an upload or ``builtin:NAME``)."""
    suffix = Path(clip).suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"the clip {Path(clip).name}: not a video file the page takes ({', '.join(SUFFIXES)}); give an MP4, MOV or WebM file")
    if not Path(clip).is_file():
        raise UserError(f"the clip {Path(clip).name} is no longer on the server; upload it again")
    check_upload(painting, param("data.style"), None, runs.uploads)
    runs.check_room()
    directory = runs.new_directory(PREFIX)
    try:
        kept = directory / "inputs" / f"{STEM}{suffix}"
        kept.parent.mkdir()
        shutil.copyfile(clip, kept)
        style = keep_input(painting, directory, "painting")
        args = [*frame_defaults(runs.defaults), *options, "--input", str(kept), "--style", style, "--out", str(directory / OUT)]
        write_record(directory, {"args": args, "kind": "clip", "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        return ClipRun(directory, args, new=True)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def resume(runs: Runs, name: str) -> ClipRun:
    """The clip run ``name``, to go on where it stopped: the same command, which resumes it."""
    if not isinstance(name, str) or not CLIP_NAME.match(name) or not (runs.root / name / RECORD).is_file():
        raise UserError(f"no clip named {name!r} on this page; stylise a clip first")
    runs.check_room()
    return ClipRun(runs.root / name, json.loads((runs.root / name / RECORD).read_text())["args"])


def frame_defaults(defaults: Sequence[str]) -> list[str]:
    """The server's fit options less those the video command sets for each frame (and refuses)."""
    kept, skip = [], False
    for arg in defaults:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] in FRAME_OWN:
            skip = "=" not in arg
        else:
            kept.append(arg)
    return kept


def execute(run: ClipRun, served: Path, session: str = "") -> Iterator[Union[ClipProgress, ClipOutcome]]:
    """Run the clip's command in the run thread, yielding its progress as its frames finish (each one also
    linked into ``served``), then its ``ClipOutcome``. ``live.stop(session)`` or closing the generator stops
    it as Ctrl-C would: the frame in progress saves its checkpoint, and a Continue resumes it."""
    name = f"{session}:{uuid.uuid4().hex}"
    channel = open_channel(name)
    done: list[tuple[int, Optional[str]]] = []
    finished = in_run_thread(lambda: done.append(_command(run, channel.stop)))
    shown = ClipProgress()
    try:
        while not finished.wait(POLL_S):
            now = progress(run, served)
            if (now.done, now.count) != (shown.done, shown.count):
                shown = now
                yield now
        code, error = done[0] if done else (1, f"{ERROR_PREFIX}the clip's command ended unexpectedly (its log: {run.directory.name}/{LOG})")
        last = progress(run, served)
        if run.new and code == 2 and last.count is None:  # refused before it began: nothing of it is kept
            shutil.rmtree(run.directory, ignore_errors=True)
            shutil.rmtree(served / run.directory.name, ignore_errors=True)
        video = run.out / f"{STEM}.mp4"
        yield ClipOutcome(code, error, _served_video(run, served, video) if code == 0 and video.is_file() else None, last)
    finally:
        channel.stop.set()
        finished.wait()
        close_channel(name)


def _command(run: ClipRun, stop: threading.Event) -> tuple[int, Optional[str]]:
    """The video command in a process of its own; SIGINT to it once ``stop`` is set. Its exit code and its
    one-line error (from its output, which goes to the run's ``ui.log``)."""
    log = run.directory / LOG
    start = log.stat().st_size if log.is_file() else 0
    with open(log, "a", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-m", "nst_lightning", "video", *run.args], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        interrupted = False
        while process.poll() is None:
            if stop.is_set() and not interrupted:
                process.send_signal(signal.SIGINT)
                interrupted = True
            time.sleep(POLL_S)
    with open(log, encoding="utf-8", errors="replace") as text:
        text.seek(start)
        lines = [line[line.index(ERROR_PREFIX) :].strip() for line in text if ERROR_PREFIX in line]
    code = process.returncode if process.returncode >= 0 else 128 - process.returncode
    return code, (lines[-1] if lines and 0 < code <= 128 else None)


def progress(run: ClipRun, served: Path) -> ClipProgress:
    """The clip's frames so far, as its command has written them; each finished frame linked into ``served``."""
    try:
        count = len(json.loads((run.out / "clip.json").read_text())["times"])
    except (OSError, ValueError, KeyError, TypeError):
        count = None
    frames, seconds = [], []
    for frame in sorted((run.out / "frames").glob("*.png")) if (run.out / "frames").is_dir() else []:
        try:
            record = json.loads((run.out / "runs" / f"frame_{frame.stem}" / "frame.json").read_text())
        except (OSError, ValueError):
            continue  # moved into frames/ a moment before its record: counted at the next look
        target = served / run.directory.name / "frames" / frame.name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(frame, target)
        frames.append(target)
        seconds.append(float(record.get("seconds", 0.0)))
    return ClipProgress(len(frames), count, frames, seconds)


def _served_video(run: ClipRun, served: Path, video: Path) -> Path:
    """The finished video in ``served``, once for each version of it (a Continue encodes it again)."""
    stat = video.stat()
    folder = served / run.directory.name
    target = folder / f"video-{stat.st_mtime_ns:x}" / video.name
    if not target.is_file():
        for old in folder.glob("video-*"):
            shutil.rmtree(old, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(video, target)
    return target

