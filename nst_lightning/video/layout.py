"""A video run's directory, ``--out DIR``, and its manifest.

    DIR/clip.json           what this directory is a run of: the clip, its range, the painting, the options;
                            the frames' times, the working size, the shots, frames that could not be decoded
    DIR/input/000001.png    the clip's frames at the working size (1-based, as the results)
    DIR/flow/               optical flow between neighbouring input frames, computed once (``flow.FlowCache``)
    DIR/runs/frame_000001/  each frame's ``fit``: config, TensorBoard events, ``frame.json``; while it runs
                            its checkpoints, the start image and the temporal target
    DIR/frames/000001.png   the results, full quality, one per input frame
    DIR/style/<size>.pt     the painting's style targets, once for the clip (``style_cache.py``)
    DIR/tensorboard/        the clip's log: per-frame losses, previews and masks (``clip_log.py``)
    DIR/<clip>.mp4          the video (or .gif), the input's timing and sound

A rerun with the same command continues it: the manifest says whether ``DIR`` holds this clip with
these options, and refuses another (as ``fit`` refuses to resume another run's checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write

MANIFEST = "clip.json"


@dataclass
class Manifest:
    identity: dict[str, Any]  # what must match for a rerun to continue this directory
    width: int
    height: int
    times: list[str]  # each frame's presentation time in seconds, as exact fractions
    fps: str
    first_index: int  # the clip's index of frame 000001
    shots: list[int] = field(default_factory=list)  # 1-based frames that start a shot (the first is 1)
    lost: list[int] = field(default_factory=list)  # the clip's indices of frames that could not be decoded

    @property
    def count(self) -> int:
        return len(self.times)

    def frame_times(self) -> list[Fraction]:
        return [Fraction(t) for t in self.times]

    def shot_ranges(self) -> list[tuple[int, int]]:
        """Each shot as 1-based frames ``[first, end)``."""
        starts = sorted(set([1, *self.shots]))
        return [(a, b) for a, b in zip(starts, [*starts[1:], self.count + 1])]


class ClipDirectory:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def input(self, n: int) -> Path:
        return self.root / "input" / f"{n:06d}.png"

    def run(self, n: int) -> Path:
        # "frame_": a bare number as the logger's version would be read as an int (version_1).
        return self.root / "runs" / f"frame_{n:06d}"

    def frame(self, n: int) -> Path:
        return self.root / "frames" / f"{n:06d}.png"

    @property
    def flow(self) -> Path:
        return self.root / "flow"

    def read(self) -> Optional[Manifest]:
        try:
            data = json.loads(self.manifest_path.read_text())
            return Manifest(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            raise UserError(f"--out {self.root}: its {MANIFEST} is damaged ({err}); delete {self.root} or give another --out") from None

    def check_same(self, identity: dict[str, Any]) -> Optional[Manifest]:
        """The manifest of a run of this clip with these options, None for a new directory;
        ``UserError`` for a directory holding something else."""
        manifest = self.read()
        if manifest is None:
            if self.root.is_dir() and any(p.name not in ("input", "flow", "style") for p in self.root.iterdir()):
                raise UserError(f"--out {self.root} is not empty and holds no video run; give a new folder for --out")
            return None
        if manifest.identity != identity:
            changed = sorted(k for k in set(identity) | set(manifest.identity) if identity.get(k) != manifest.identity.get(k))
            raise UserError(
                f"--out {self.root} holds a video run of another clip or with other options ({', '.join(changed)} differ); "
                "rerun with the same options to continue it, or give another --out"
            )
        return manifest

    def write(self, manifest: Manifest) -> None:
        text = json.dumps(asdict(manifest), indent=1).encode()
        atomic_write(self.manifest_path, lambda handle: handle.write(text))

    def finish_frame(self, n: int, result: Path, record: dict[str, Any]) -> None:
        """Frame ``n`` done: its result into ``frames/``, its record, and what only a run in progress
        needs removed (checkpoints, the start image, the temporal target), so that the disk a clip
        takes grows by a result and some events per frame."""
        self.frame(n).parent.mkdir(parents=True, exist_ok=True)
        # Moved, not copied: one file a frame. A stop before the record is written leaves the frame
        # undone, and its rerun resumes the finished checkpoint, which writes the result again.
        os.replace(result, self.frame(n))
        text = json.dumps(record, indent=1).encode()
        atomic_write(self.run(n) / "frame.json", lambda handle: handle.write(text))
        shutil.rmtree(self.run(n) / "checkpoints", ignore_errors=True)
        for name in ("init.png", "previous.pt"):
            (self.run(n) / name).unlink(missing_ok=True)

    def is_done(self, n: int) -> bool:
        try:
            record = json.loads((self.run(n) / "frame.json").read_text())
        except (OSError, ValueError):
            return False
        return record.get("status") == "done" and self.frame(n).is_file()
