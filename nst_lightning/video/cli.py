"""``python -m nst_lightning video``: a clip in a painting's style without flicker (Ruder et al. 2016).

    python -m nst_lightning video --config configs/quick.yaml --input clip.mp4 --style starry.jpg --out styled/

Every other option (``--model.*``, ``--data.image_size``, ``--trainer.*``, ``--config``) is each
frame's ``fit`` option, checked once before anything is written. Rerunning the same command skips
finished frames and resumes the one in progress from its checkpoint.

Exit codes: 0 done; 2 an error (one line: the option, or the frame and its reason); 128 + N stopped by
signal N (rerun to go on).
"""

from __future__ import annotations

import argparse
import signal
import sys
from fractions import Fraction
from pathlib import Path
from typing import Optional

from nst_lightning.utilities.errors import RunInterrupted, UserError
from nst_lightning.utilities.files import WriteFailed
from nst_lightning.utilities.signals import sigterm_between_runs
from nst_lightning.video.clip import VideoOptions, run_clip

# Set by the command for each frame: giving them would point every frame at the same run.
OWN_OPTIONS = ("--data.content", "--data.style", "--ckpt_path", "--trainer.logger", "--model.init_image")


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} video",
        description="Style a clip frame by frame, each frame held to the previous one by optical flow; any fit option "
        "(--config, --model.*, --data.image_size, --trainer.*) applies to every frame.",
        exit_on_error=False,
    )
    what = p.add_argument_group("what to style")
    what.add_argument("--input", required=True, help="a video file (mp4, mov, mkv, webm, GIF) or a folder or glob of frames")
    what.add_argument("--style", required=True, help="the painting (a file, URL or builtin:NAME; a list \"[a.jpg, b.jpg]\" blends)")
    what.add_argument("--out", default=None, help="the run's folder (default: INPUT_styled): frames/, the video, a run per frame")
    what.add_argument("--frames", default=None, help="A:B, the frames from A to B (0-based, B excluded), e.g. 0:24 for a first try")
    what.add_argument("--out_format", default="mp4", choices=["mp4", "gif"], help="mp4 (H.264, the input's sound) or gif (short loops)")
    run = p.add_argument_group("how the shots run")
    run.add_argument("--launcher", default="sequential", choices=["sequential", "ray"],
                     help="where shots run: this process, or Ray tasks in parallel")
    run.add_argument("--ray_address", default=None, help="with --launcher ray: auto or HOST:PORT of a running cluster (default: a local one)")
    run.add_argument("--cpus_per_job", type=float, default=None, help="with --launcher ray on CPUs: cores per shot (default: all of this machine's)")
    run.add_argument("--shard", default=None, help="I/N: only the I-th (from 0) of N shares of the shots; slurm: a job array's task")
    frames = p.add_argument_group("holding frames together")
    frames.add_argument("--video.first_frame_steps", dest="first_frame_steps", type=int, default=None,
                        help="steps of each shot's first frame, a still run (default: --trainer.max_steps)")
    frames.add_argument("--video.frame_steps", dest="frame_steps", type=int, default=None,
                        help="steps of every later frame, started from the previous result (default: a fifth of the first's)")
    frames.add_argument("--video.temporal_weight", dest="temporal_weight", type=float, default=VideoOptions.temporal_weight,
                        help="how strongly a frame is held to the previous result where the flow is trusted (0: not at all)")
    frames.add_argument("--video.fill", dest="fill", default="warped", choices=["warped", "content"],
                        help="a frame's start where the flow is not trusted: the warped previous result (Ruder et al.; less flicker, "
                        "docs/guide/video.md) or the photo's pixels")
    frames.add_argument("--video.temporal_frames", dest="temporal_frames", default="1",
                        help="earlier frames each frame is held to, nearest first: 1 (the previous one), or e.g. 1,2,4 (long-term consistency)")
    frames.add_argument("--video.cut_threshold", dest="cut_threshold", type=float, default=VideoOptions.cut_threshold,
                        help="histogram distance between frames above which a new shot starts")
    flow = p.add_argument_group("optical flow")
    flow.add_argument("--video.flow", dest="flow", default="dis", choices=["dis", "raft"],
                      help="optical flow: OpenCV's DIS (no weights), or torchvision's RAFT with --video.flow_weights")
    flow.add_argument("--video.flow_weights", dest="flow_weights", default=None,
                      help="with --video.flow raft: a raft_large or raft_small state dict file")
    flow.add_argument("--video.flow_preset", dest="flow_preset", default="medium", choices=["ultrafast", "fast", "medium"],
                      help="OpenCV DIS's preset (medium: the most accurate on Sintel, docs/guide/video.md)")
    written = p.add_argument_group("the clip written")
    written.add_argument("--video.crf", dest="crf", type=int, default=18, help="H.264 quality: 0 lossless ... 51 worst (18: visually lossless)")
    written.add_argument("--video.preview_every", dest="preview_every", type=int, default=10,
                         help="a result and its consistency mask in OUT/tensorboard every this many frames (0: each shot's first only)")
    written.add_argument("--video.fps", dest="fps", default=None, help="a folder of frames' rate (default 25), e.g. 24 or 30000/1001")
    return p


def parse(argv: list[str], prog: str) -> VideoOptions:
    from nst_lightning.run.fit_options import split_command_line
    from nst_lightning.video.io import parse_range

    known, fit_args = split_command_line(
        parser(prog), argv, OWN_OPTIONS, "is set by video for each frame; give the clip with --input, the painting with --style"
    )
    if any(arg.split("=", 1)[0].startswith("--data.regions") for arg in fit_args):
        raise UserError("--data.regions: a video has no per-frame masks yet; leave --data.regions out")
    for name in ("first_frame_steps", "frame_steps", "crf"):
        value = getattr(known, name)
        if value is not None and (value < (0 if name == "crf" else 1) or (name == "crf" and value > 51)):
            option = "--video.crf" if name == "crf" else f"--video.{name}"
            raise UserError(f"{option} {value}: give {'0 to 51' if name == 'crf' else 'a positive number of steps'}")
    if known.flow == "raft" and not known.flow_weights:
        raise UserError("--video.flow raft needs its weights: add --video.flow_weights PATH (a raft_large or raft_small state dict)")
    if known.flow_weights and known.flow != "raft":
        raise UserError("--video.flow_weights is for --video.flow raft; add --video.flow raft")
    if known.flow_weights and not Path(known.flow_weights).is_file():
        raise UserError(f"--video.flow_weights {known.flow_weights}: no such file")
    try:
        temporal_frames = tuple(sorted({int(j) for j in known.temporal_frames.split(",")}))
    except ValueError:
        temporal_frames = ()
    if not temporal_frames or temporal_frames[0] != 1:
        raise UserError(f"--video.temporal_frames {known.temporal_frames}: give whole numbers of frames back, starting with 1, e.g. 1 or 1,2,4")
    if known.preview_every < 0:
        raise UserError(f"--video.preview_every {known.preview_every}: give 0 or more frames")
    if known.temporal_weight < 0:
        raise UserError(f"--video.temporal_weight {known.temporal_weight}: give 0 or more")
    try:
        fps = Fraction(known.fps) if known.fps is not None else None
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps is not None and fps <= 0:
        raise UserError(f"--video.fps {known.fps}: give a positive rate, e.g. 25 or 30000/1001")
    if known.ray_address is not None and known.launcher != "ray":
        raise UserError("--ray_address is for --launcher ray; add --launcher ray")
    if known.cpus_per_job is not None and not known.cpus_per_job > 0:
        raise UserError(f"--cpus_per_job {known.cpus_per_job}: give a positive number of cores")
    if known.shard is not None:
        from nst_lightning.run.launchers import parse_shard

        parse_shard(known.shard)  # a bad share: said before anything is written
    start, stop = parse_range(known.frames) if known.frames is not None else (0, None)
    out = Path(known.out) if known.out else Path(f"{Path(known.input.rstrip('/')).stem or 'clip'}_styled")
    return VideoOptions(
        input=known.input, style=known.style, out=out.expanduser().absolute(), start=start, stop=stop,
        first_frame_steps=known.first_frame_steps, frame_steps=known.frame_steps, temporal_weight=known.temporal_weight,
        temporal_frames=temporal_frames, fill=known.fill, flow=known.flow, flow_weights=known.flow_weights,
        flow_preset=known.flow_preset, cut_threshold=known.cut_threshold, out_format=known.out_format, crf=known.crf,
        fps=fps, fit_args=tuple(fit_args), preview_every=known.preview_every, launcher=known.launcher, ray_address=known.ray_address,
        cpus_per_job=known.cpus_per_job, shard=known.shard,
    )


def run_video(argv: list[str], prog: str) -> Optional[Path]:
    """Parse ``argv``, check the frames' fit options once, run the clip; the encoded video's path
    (None: with ``--shard``, other shares have frames to do).
    Raises ``UsageError``/``UserError`` (one line), ``WriteFailed``, ``SystemExit(128 + N)`` when a
    frame was stopped by signal N."""
    from nst_lightning.run.fit_options import check_fit_options
    from nst_lightning.video.frame_run import frame_arguments
    from nst_lightning.video.layout import ClipDirectory

    options = parse(argv, prog)
    # The frames' fit options, once, before anything is written: a bad one is every frame's.
    settings = check_fit_options(frame_arguments(ClipDirectory(options.out), 1, options.style, options.fit_args, None, None))
    if settings.config.get("data.regions"):
        raise UserError("--data.regions: a video has no per-frame masks yet; leave data.regions out of the config")
    return run_clip(options, settings.image_size, settings.max_steps)


def video_main(argv: list[str], prog: str) -> int:
    """The ``video`` command: its exit code; every error is one line on stderr."""
    from nst_lightning.run.fit_options import UsageError

    try:
        with sigterm_between_runs():  # between frames: like Ctrl-C
            run_video(argv, prog)
        return 0
    except UsageError as err:
        print(f"nst_lightning: error: {err}", file=sys.stderr)
        return 2
    except WriteFailed as err:
        print(f"nst_lightning: error: {err}; free some space and rerun the same command to go on", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"nst_lightning: error: {err.for_cli()}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # a frame stopped by a signal: its line said what of it was saved
        return stop.code if isinstance(stop.code, int) else 1
    except (KeyboardInterrupt, RunInterrupted) as err:
        signum = err.signum if isinstance(err, RunInterrupted) else signal.SIGINT
        print(f"video: stopped by {signal.Signals(signum).name} between frames; rerun the same command to go on", file=sys.stderr)
        return 128 + signum
