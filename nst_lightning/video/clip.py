"""A clip, frame by frame: its frames extracted at the working size, cut into shots, each frame a
``fit`` (``frame_run.py``), the results encoded with the input's timing and sound.

Within a shot the frames are sequential (frame ``n`` starts from ``n - 1``'s result); a hard cut
(``shots.find_cuts``) starts a new shot with a still run, since a flow across a cut matches unrelated
pictures. The flow of the next frame is computed in a thread while the current one optimises
(OpenCV releases the GIL), so it costs no wall time of its own.
"""

from __future__ import annotations

import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from nst_lightning.utilities.errors import UserError
from nst_lightning.video.flow import FlowCache
from nst_lightning.video.frame_run import frame_arguments, prepare, read_rgb, record, run_frame, write_png
from nst_lightning.video.io import FrameReader, open_clip, write_gif, write_video
from nst_lightning.video.layout import ClipDirectory, Manifest
from nst_lightning.video.shots import find_cuts


@dataclass(frozen=True)
class VideoOptions:
    input: str
    style: str
    out: Path
    start: int = 0
    stop: Optional[int] = None
    first_frame_steps: Optional[int] = None  # None: the fit's --trainer.max_steps
    frame_steps: Optional[int] = None  # None: a quarter of the first frame's
    temporal_weight: float = 1000.0
    flow_preset: str = "medium"
    cut_threshold: float = 0.25
    out_format: str = "mp4"
    crf: int = 18
    fps: Optional[Fraction] = None  # a folder of frames' rate (default 25)
    fit_args: tuple[str, ...] = ()

    def steps(self, fit_max_steps: int) -> tuple[int, int]:
        first = self.first_frame_steps or fit_max_steps
        return first, self.frame_steps or max(1, first // 4)

    def identity(self, image_size: int, fit_max_steps: int) -> dict[str, Any]:
        """What a rerun must share to continue a directory (not the encoding: a rerun may re-encode)."""
        source = Path(self.input)
        stat = source.stat() if source.is_file() else None
        first, later = self.steps(fit_max_steps)
        return {
            "input": str(source.resolve()) if source.exists() else self.input,
            "input_bytes": stat.st_size if stat else None,
            "frames": [self.start, self.stop],
            "style": self.style,
            "image_size": image_size,
            "fit_args": list(self.fit_args),
            "steps": [first, later],
            "temporal_weight": self.temporal_weight,
            "flow_preset": self.flow_preset,
            "cut_threshold": self.cut_threshold,
        }


def extract(options: VideoOptions, clip: ClipDirectory, image_size: int, identity: dict[str, Any]) -> Manifest:
    """The range's frames at the working size into ``input/`` (the size ``fit`` would give them:
    its long side ``image_size``, rounded as ``inputs.images`` rounds), and the manifest."""
    reader = FrameReader(options.input, options.start, options.stop, options.fps)
    times, thumbnails, size = [], [], None
    for n, frame in enumerate(reader, start=1):
        image = Image.fromarray(frame.image)
        scale = image_size / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        pixels = np.asarray(image)
        write_png(clip.input(n), pixels)
        thumbnails.append(pixels)
        times.append(frame.time)
    info = open_clip(options.input, options.fps)
    shots = find_cuts(thumbnails, options.cut_threshold)
    manifest = Manifest(
        identity=identity, width=size[0], height=size[1], times=[str(t) for t in times], fps=str(info.fps),
        first_index=options.start, shots=[n + 1 for n in shots], lost=list(reader.lost),
    )
    clip.write(manifest)
    return manifest


class FrameProgress:
    """One bar over the frames: done/total, seconds a frame, ETA (from the frames run in this process)."""

    def __init__(self, total: int, done: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="frame", file=sys.stderr, dynamic_ncols=True,
                        bar_format="video: {n_fmt}/{total_fmt} frames |{bar}| {desc}")
        self.seconds, self.timed = 0.0, 0

    def advance(self, seconds: float) -> None:
        self.seconds, self.timed = self.seconds + seconds, self.timed + 1
        per_frame = self.seconds / self.timed
        left = self.bar.total - self.bar.n - 1
        self.bar.set_description_str(f"{per_frame:.1f} s/frame, ETA {int(per_frame * left) // 60}:{int(per_frame * left) % 60:02d}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def stylize_frames(options: VideoOptions, clip: ClipDirectory, manifest: Manifest, fit_max_steps: int) -> None:
    """Every frame not yet done, shot by shot; ``UserError`` for a frame's error, ``RunInterrupted``-like
    ``SystemExit(128 + N)`` when stopped (the frame in progress keeps its checkpoint)."""
    first_steps, later_steps = options.steps(fit_max_steps)
    flows = FlowCache(clip.flow, options.flow_preset)
    todo = [n for n in range(1, manifest.count + 1) if not clip.is_done(n)]
    progress = FrameProgress(manifest.count, manifest.count - len(todo))
    starts = {first for first, _ in manifest.shot_ranges()}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flow")
    ahead: Optional[Future] = None
    try:
        for n in todo:
            clip.run(n).mkdir(parents=True, exist_ok=True)
            still = n in starts
            trusted = None
            if not still:
                if ahead is not None:
                    ahead.result()
                if not (clip.run(n) / "previous.pt").is_file() or not (clip.run(n) / "init.png").is_file():
                    trusted = prepare(clip, n, flows)
            if n + 1 <= manifest.count and n + 1 not in starts:  # the next frame's flow, while this one runs
                ahead = pool.submit(_flows_of, clip, flows, n + 1)
            args = frame_arguments(clip, n, options.style, options.fit_args, first_steps if still else later_steps,
                                   None if still else options.temporal_weight)
            outcome = run_frame(clip, n, args)
            if outcome.code == 2:
                raise UserError(f"frame {n}: {outcome.line.removeprefix('nst_lightning: error: ')} (its log: {clip.run(n) / 'frame.log'})")
            if outcome.code != 0:
                progress.close()
                # The run's own line says how to resume a fit; a clip resumes by its own command.
                head = outcome.line.removeprefix("nst_lightning: ").split(";")[0]
                print(f"video: {head} of frame {n} of {manifest.count}, its checkpoint saved; "
                      "rerun the same command to continue from there", file=sys.stderr)
                raise SystemExit(outcome.code)
            clip.finish_frame(n, clip.run(n) / "generated.png", record(outcome, n, trusted))
            progress.advance(outcome.seconds)
    finally:
        progress.close()
        pool.shutdown(wait=True, cancel_futures=True)


def _flows_of(clip: ClipDirectory, flows: FlowCache, n: int) -> None:
    content, before = read_rgb(clip.input(n)), read_rgb(clip.input(n - 1))
    flows.pair(n, n - 1, content, before)
    flows.pair(n - 1, n, before, content)


def encode(options: VideoOptions, clip: ClipDirectory, manifest: Manifest) -> Path:
    """The results as a video with the input's timing (the range's first frame at 0) and its sound."""
    times = manifest.frame_times()
    start = times[0]
    frames = (read_rgb(clip.frame(n)) for n in range(1, manifest.count + 1))
    stem = Path(options.input.rstrip("/")).stem.replace("*", "") or "clip"
    if options.out_format == "gif":
        return write_gif(frames, [t - start for t in times], clip.root / f"{stem}.gif")
    info = open_clip(options.input, options.fps)
    end = times[-1] + 1 / Fraction(manifest.fps) if manifest.fps not in ("0", "0/1") else None
    return write_video(
        frames, [t - start for t in times], clip.root / f"{stem}.mp4", fps=Fraction(manifest.fps), crf=options.crf,
        audio_from=options.input if info.has_audio else None, audio_start=start, audio_end=end,
    )


def run_clip(options: VideoOptions, image_size: int, fit_max_steps: int) -> Path:
    """The whole clip (or what is left of it) into ``options.out``; the encoded video's path."""
    clip = ClipDirectory(options.out)
    identity = options.identity(image_size, fit_max_steps)
    manifest = clip.check_same(identity)
    if manifest is None:
        open_clip(options.input, options.fps)  # not a clip: said before anything is written
        created = not options.out.exists()
        options.out.mkdir(parents=True, exist_ok=True)
        try:
            manifest = extract(options, clip, image_size, identity)
        except BaseException:
            # A range past the end, a frame of another size, a stop: found while extracting, and
            # nothing of it kept (the manifest is written last, so a rerun starts afresh anyway).
            if created:
                shutil.rmtree(options.out, ignore_errors=True)
            raise
    if manifest.lost:
        print(f"video: {len(manifest.lost)} frame(s) could not be decoded and are left out: {manifest.lost[:10]}", file=sys.stderr)
    started = time.monotonic()
    stylize_frames(options, clip, manifest, fit_max_steps)
    path = encode(options, clip, manifest)
    print(f"video: {manifest.count} frames in {len(manifest.shot_ranges())} shot(s), {time.monotonic() - started:.0f} s; {path}", file=sys.stderr)
    return path

