"""One shot of a clip, its frames in order: the unit a launcher runs (``run/launchers.py``), in this
process or as a Ray task. Shots are independent (a shot's first frame is a still run), so they run
in parallel; within a shot each frame starts from the previous one's saved result.

The flow of the next frame is computed in a thread while the current one optimises (OpenCV releases
the GIL), so it costs little wall time of its own.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from nst_lightning.utilities.errors import UserError
from nst_lightning.video.clip_log import ClipLog
from nst_lightning.video.flow import FlowCache
from nst_lightning.video.frame_run import FrameOutcome, frame_arguments, prepare, read_rgb, record, run_frame
from nst_lightning.video.layout import ClipDirectory


def run_shot(
    options: Any, root: str, first: int, end: int, count: int, fit_max_steps: int,
    on_frame: Optional[Callable[[float], None]] = None,
) -> list[dict[str, Any]]:
    """Frames ``first .. end - 1`` (1-based) of the clip in ``root`` that are not done yet; their
    records. ``UserError`` for a frame's error; ``SystemExit(128 + N)`` when a frame was stopped by
    signal N (after one line saying what of it was saved). ``on_frame(seconds)`` after each frame (in this process only)."""
    clip = ClipDirectory(Path(root))
    first_steps, later_steps = options.steps(fit_max_steps)
    flows = flow_cache(options, clip)
    todo = [n for n in range(first, end) if not clip.is_done(n)]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flow")
    ahead: Optional[Future] = None
    records = []
    log = ClipLog(clip.root, options.preview_every)
    try:
        for n in todo:
            clip.run(n).mkdir(parents=True, exist_ok=True)
            still, trusted = n == first, None
            if not still:
                if ahead is not None:
                    ahead.result()
                trusted = _prepared(clip, n, flows, options.temporal_frames, first, options.fill)
            if n + 1 < end:  # the next frame's flow, while this one runs
                ahead = pool.submit(_flows_of, clip, flows, n + 1)
            args = frame_arguments(clip, n, options.style, options.fit_args, first_steps if still else later_steps,
                                   None if still else options.temporal_weight)
            outcome = run_frame(clip, n, args)
            if outcome.code == 2:
                raise UserError(f"frame {n}: {outcome.line.removeprefix('nst_lightning: error: ')} (its log: {clip.run(n) / 'frame.log'})")
            if outcome.code != 0:
                from tqdm import tqdm

                # Above the bar over the frames, which then clears itself: this is the last line.
                tqdm.write(stopped_line(outcome, clip.run(n), n, count), file=sys.stderr)
                raise SystemExit(outcome.code)
            records.append(record(outcome, n, trusted))
            log.frame(n, records[-1], clip.run(n) / "generated.png", clip.run(n) / "previous.pt", still)
            clip.finish_frame(n, clip.run(n) / "generated.png", records[-1])
            if on_frame is not None:
                on_frame(outcome.seconds)
    finally:
        log.close()
        pool.shutdown(wait=True, cancel_futures=True)
    return records


def stopped_line(outcome: FrameOutcome, run: Path, n: int, count: int) -> str:
    """What the command says when frame ``n``'s ``fit`` was stopped by a signal: the frame's own line
    (which signal, after how many steps) and what is on disk to go on from, since a stop outside
    training (while the frame's run starts) or a second signal saves nothing."""
    head = outcome.line.removeprefix("nst_lightning: ").split(";")[0].split(",")[0] or f"stopped (exit code {outcome.code})"
    if not (run / "checkpoints" / "last.ckpt").is_file():
        return (f"video: {head} in frame {n} of {count}, before its first checkpoint: nothing of that frame was saved; "
                "rerun the same command to start it again")
    if head.startswith("stopped at once") or "outside training" in head:
        return (f"video: {head} in frame {n} of {count}, nothing saved since its last checkpoint; "
                "rerun the same command to continue from that checkpoint")
    # The run's own line says how to resume a fit; a clip resumes by its own command.
    return f"video: {head} of frame {n} of {count}, its checkpoint saved; rerun the same command to continue from there"


def _prepared(clip: ClipDirectory, n: int, flows: FlowCache, earlier: tuple[int, ...], first: int, fill: str) -> float:
    """Frame ``n``'s start image and temporal target, made once (a resumed frame keeps its own); the
    fraction of its pixels the flow is trusted at."""
    previous = clip.run(n) / "previous.pt"
    if previous.is_file() and (clip.run(n) / "init.png").is_file():
        try:
            return float(torch.load(previous, map_location="cpu", weights_only=True)["mask"][0].mean())
        except Exception:  # damaged by a crash mid-write of an older version: made again, the same
            pass
    return prepare(clip, n, flows, earlier, first, fill)


def _flows_of(clip: ClipDirectory, flows: FlowCache, n: int) -> None:
    content, before = read_rgb(clip.input(n)), read_rgb(clip.input(n - 1))
    flows.pair(n, n - 1, content, before)
    flows.pair(n - 1, n, before, content)


def flow_cache(options: Any, clip: ClipDirectory) -> FlowCache:
    """The clip's flows: DIS at ``--video.flow_preset``, or RAFT with ``--video.flow_weights``."""
    if options.flow == "raft":
        from nst_lightning.video.raft import RaftFlow

        return FlowCache(clip.flow, method=RaftFlow(options.flow_weights), name="raft")
    return FlowCache(clip.flow, options.flow_preset)
