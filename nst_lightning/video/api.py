"""``stylize_video``: the ``video`` command in one call, for notebooks and scripts.

    from nst_lightning import stylize_video
    path = stylize_video("clip.mp4", "starry.jpg", "styled/", config="configs/quick.yaml", frames="0:24",
                         frame_steps=50, image_size=160, style_weight=20)

Keywords are the command's own options (``frames``, ``first_frame_steps``, ``frame_steps``,
``temporal_weight``, ``flow_preset``, ``cut_threshold``, ``crf``, ``fps``, ``preview_every``, ``out_format``), any option of
``StyleTransfer`` or ``StyleTransferData`` by its name (``style_weight``, ``image_size``...), and
``max_steps`` (the first frame's steps). The same checks, files and resumption as the command; errors
are ``UserError``s, and a stop by Ctrl-C a ``KeyboardInterrupt`` (after a line on stderr that says what of the frame
was saved; calling it again goes on).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Optional, Union

from nst_lightning.utilities.errors import UserError

VIDEO_OPTIONS = (
    "first_frame_steps", "frame_steps", "temporal_weight", "flow_preset", "cut_threshold", "crf", "fps", "preview_every", "flow",
    "flow_weights", "temporal_frames", "fill",
)


def stylize_video(
    input: Union[str, os.PathLike],
    style: Union[str, os.PathLike],
    out: Optional[Union[str, os.PathLike]] = None,
    *,
    config: Optional[Union[str, os.PathLike]] = None,
    frames: Optional[str] = None,
    out_format: str = "mp4",
    **options: Any,
) -> Path:
    """Style the clip ``input`` (a video file, or a folder or glob of frames) in the painting ``style``
    into ``out`` (default: ``INPUT_styled``); the encoded video's path."""
    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    from nst_lightning.run.fit_options import UsageError
    from nst_lightning.video.cli import run_video

    argv = ["--input", str(input), "--style", str(style), "--out_format", out_format]
    argv += ["--out", str(out)] if out is not None else []
    argv += ["--config", str(config)] if config is not None else []
    argv += ["--frames", frames] if frames is not None else []
    model, data = (set(inspect.signature(cls.__init__).parameters) - {"self"} for cls in (StyleTransfer, StyleTransferData))
    for name, value in options.items():
        if name in VIDEO_OPTIONS:
            argv += [f"--video.{name}", str(value)]
        elif name == "max_steps":
            argv += ["--trainer.max_steps", str(value)]
        elif name in model or name in data:
            argv += [f"--{'model' if name in model else 'data'}.{name}", _yaml(value)]
        else:
            raise UserError(f"stylize_video() got an unknown option {name}=; see help(nst_lightning.stylize_video)")
    try:
        return run_video(argv, "stylize_video()")
    except UsageError as err:
        raise UserError(str(err)) from None
    except SystemExit as stop:  # a frame stopped by a signal (its line said what was saved)
        raise KeyboardInterrupt(f"stylize_video() stopped (exit code {stop.code}); call it again to continue") from None


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
