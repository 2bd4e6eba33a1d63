"""A clip: its frames extracted at the working size, cut into shots, the shots run on a launcher
(``shot_run.py``: each frame a ``fit``, ``frame_run.py``), the results encoded with the input's timing
and sound.

Within a shot the frames are sequential (frame ``n`` starts from ``n - 1``'s result); a hard cut
(``shots.find_cuts``) starts a new shot with a still run, since a flow across a cut matches unrelated
pictures, so shots are independent and run in parallel (Ray) or in shares (``--shard``, SLURM arrays).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
from PIL import Image

from nst_lightning.run import launchers
from nst_lightning.run.launchers import parse_shard
from nst_lightning.video.frame_run import read_rgb, write_png
from nst_lightning.video.io import FrameReader, open_clip, write_gif, write_video
from nst_lightning.video.layout import ClipDirectory, Manifest
from nst_lightning.video.shot_run import run_shot
from nst_lightning.video.shots import find_cuts


@dataclass(frozen=True)
class VideoOptions:
    input: str
    style: str
    out: Path
    start: int = 0
    stop: Optional[int] = None
    first_frame_steps: Optional[int] = None  # None: the fit's --trainer.max_steps
    frame_steps: Optional[int] = None  # None: a fifth of the first frame's (docs/guide/video.md: 0.22x its time)
    temporal_weight: float = 1000.0
    fill: str = "warped"  # where the flow is not trusted, the start is still the warped result (or the photo's)
    temporal_frames: tuple[int, ...] = (1,)  # earlier frames each frame is held to (Ruder et al.'s long-term J)
    flow: str = "dis"  # or raft, with flow_weights
    flow_weights: Optional[str] = None
    flow_preset: str = "medium"
    cut_threshold: float = 0.25
    out_format: str = "mp4"
    crf: int = 18
    preview_every: int = 10  # a result and its mask in OUT/tensorboard every this many frames
    fps: Optional[Fraction] = None  # a folder of frames' rate (default 25)
    fit_args: tuple[str, ...] = ()
    launcher: str = "sequential"  # where shots run (run/launchers.py): not part of the identity
    ray_address: Optional[str] = None
    cpus_per_job: Optional[float] = None
    shard: Optional[str] = None

    def steps(self, fit_max_steps: int) -> tuple[int, int]:
        first = self.first_frame_steps or fit_max_steps
        return first, self.frame_steps or max(1, first // 5)

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
            "temporal_frames": list(self.temporal_frames),
            "fill": self.fill,
            "flow": self.flow if self.flow == "dis" else f"raft:{Path(self.flow_weights or '').name}",
            "flow_preset": self.flow_preset,
            "cut_threshold": self.cut_threshold,
        }


def extract(options: VideoOptions, clip: ClipDirectory, image_size: int, identity: dict[str, Any]) -> Manifest:
    """The range's frames at the working size into ``input/`` (the size ``fit`` would give them:
    its long side ``image_size``, rounded as ``inputs.images`` rounds), and the manifest.

    Streamed: each frame is decoded, resized, written and measured for cuts (``find_cuts`` keeps the
    previous frame's histograms only) before the next is decoded, so memory holds a frame or two
    whatever the clip's length (docs/guide/video.md: flat from 300 to 3000 frames)."""
    reader = FrameReader(options.input, options.start, options.stop, options.fps)
    times: list[Fraction] = []
    size: Optional[tuple[int, int]] = None

    def working_size() -> Iterator[np.ndarray]:
        nonlocal size
        for n, frame in enumerate(reader, start=1):
            image = Image.fromarray(frame.image)
            scale = image_size / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            if size != image.size:
                image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            pixels = np.asarray(image)
            write_png(clip.input(n), pixels)
            times.append(frame.time)
            yield pixels

    shots = find_cuts(working_size(), options.cut_threshold)
    info = open_clip(options.input, options.fps)
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

        # leave=False: the bar clears itself at the end, and the lines said then (the result, a stop) stay.
        self.bar = tqdm(total=total, initial=done, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False,
                        bar_format="video: {n_fmt}/{total_fmt} frames |{bar}| {desc}")
        self.seconds, self.timed = 0.0, 0

    def advance(self, seconds: float) -> None:
        self.seconds, self.timed = self.seconds + seconds, self.timed + 1
        per_frame = self.seconds / self.timed
        left = self.bar.total - self.bar.n - 1
        self.bar.set_description_str(f"{per_frame:.1f} s/frame, ETA {int(per_frame * left) // 60}:{int(per_frame * left) % 60:02d}", refresh=False)
        self.bar.update(1)

    def advance_by(self, records: list[dict[str, Any]]) -> None:
        for frame in records:
            self.advance(frame["seconds"])

    def close(self) -> None:
        self.bar.close()


def stylize_frames(options: VideoOptions, clip: ClipDirectory, manifest: Manifest, fit_max_steps: int) -> bool:
    """The shots (this process's share, with ``--shard``) on their launcher; whether every frame of
    the clip is done. ``UserError`` for a frame's error, ``SystemExit(128 + N)`` when stopped."""
    shots = manifest.shot_ranges()
    if options.shard is not None:
        index, count = parse_shard(options.shard)
        shots = [shot for position, shot in enumerate(shots) if position % count == index]
    todo = [shot for shot in shots if not all(clip.is_done(n) for n in range(*shot))]
    mine = sum(end - first for first, end in shots)
    progress = FrameProgress(mine, mine - sum(sum(not clip.is_done(n) for n in range(*shot)) for shot in todo))
    root = str(clip.root)
    try:
        if options.launcher == "ray":
            # One task a shot: the bar moves as each ends, by its frames.
            units = [(options, root, first, end, manifest.count, fit_max_steps) for first, end in todo]
            launchers.ray(units, run_shot, progress.advance_by, address=options.ray_address, cpus_per_job=options.cpus_per_job)
        else:
            units = [(options, root, first, end, manifest.count, fit_max_steps, progress.advance) for first, end in todo]
            launchers.sequential(units, run_shot, lambda records: None)
    finally:
        progress.close()
    return all(clip.is_done(n) for n in range(1, manifest.count + 1))


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


def run_clip(options: VideoOptions, image_size: int, fit_max_steps: int) -> Optional[Path]:
    """The whole clip (or what is left of it, or this shard's share) into ``options.out``; the encoded
    video's path (None: frames of other shards are still to do)."""
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
    if not stylize_frames(options, clip, manifest, fit_max_steps):
        left = sum(not clip.is_done(n) for n in range(1, manifest.count + 1))
        print(f"video: this share's shots are done; {left} frame(s) of other shares are not, and the run that finishes "
              "the last writes the video (or rerun without --shard)", file=sys.stderr)
        return None
    path = encode(options, clip, manifest)
    print(f"video: {manifest.count} frames in {len(manifest.shot_ranges())} shot(s), {time.monotonic() - started:.0f} s; {path}", file=sys.stderr)
    return path

