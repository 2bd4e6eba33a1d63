"""The page's runs folder, without the page: each run a real ``fit`` (made by ``runner.execute``) in a
directory of ``--runs`` that the server names, and what the page reads and serves of them.

- ``Runs.fresh``: a new run of a photo and paintings. Each upload is checked first (it decodes within the
  limits every input has, read from its header), then copied into the run's ``inputs/`` under the server's
  names, so the run can be resumed after the upload cache is gone, and a user's file name names nothing on
  the server. ``Runs.resume``: the same run, further (``--ckpt_path last``, ``--trainer.max_steps`` its
  checkpoint's step plus the steps asked for). ``Runs.from_result``: a new run that starts from an earlier
  one's image. No new run starts while the folder holds more than its cap (``max_bytes``).
- ``ui.json`` in each run: its ``fit`` options, so the gallery can show and continue it. The gallery lists
  every run with a checkpoint (its step read from the checkpoint, so a run cut short by a crash is there too).
- ``SERVED``: the one folder the page serves files from: a copy (a hard link where the file system has
  them) of each run's result, or of its checkpoint's image when it has no result of that step. Nothing
  else of a run (its uploads, checkpoints, ``config.yaml``, ``ui.log``) is ever served.

No gradio here: the tests and other front ends can drive runs through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

from nst_lightning.inputs.images import header_size
from nst_lightning.inputs.sources import BUILTIN_PREFIX
from nst_lightning.ui.live import as_array
from nst_lightning.ui.runner import LAST, RECORD, RESULT, Run, checkpoint_step, write_record
from nst_lightning.utilities.errors import UserError, param
from nst_lightning.utilities.files import atomic_write

SERVED = ".served"  # under the runs folder; dot-named, so never taken for a run
# What the server names runs: the time and a random token, so that no one can guess another visitor's run
# (an earlier server's runs, named by a counter, are still listed). Anything else from the page is refused.
NAME = re.compile(r"^\d{8}-\d{6}-(?:[0-9a-f]{16}|\d{1,9})$")
CLIP_NAME = re.compile(r"^clip-\d{8}-\d{6}-[0-9a-f]{16}$")  # a clip's run (``clips.py``): never in the gallery of stills


class Runs:
    """The runs under ``root``; ``defaults`` are the fit options every run starts from (``--config``...);
    ``max_bytes``: no run starts while the folder holds more (``None``: no cap); ``uploads``: the folder the
    page's uploads are in (an upload that is not an image is removed from it, and from nowhere else)."""

    def __init__(self, root: Path, defaults: Sequence[str], max_bytes: Optional[float] = None, uploads: Optional[Path] = None) -> None:
        self.root, self.defaults, self.max_bytes, self.uploads = root, list(defaults), max_bytes, uploads
        self._steps: dict[Path, tuple[tuple[int, int, int], Optional[int]]] = {}  # last.ckpt -> (its stat, its step)

    def fresh(self, photo: str, paintings: Sequence[str], options: Sequence[str], long_side: Optional[int] = None) -> Run:
        if not paintings:
            raise UserError("give a painting (upload one, or pick a built-in one)")
        check_upload(photo, param("data.content"), long_side, self.uploads)
        for painting in paintings:
            check_upload(painting, param("data.style"), long_side, self.uploads)
        self.check_room()
        directory = self.new_directory()
        try:
            inputs = [keep_input(photo, directory, "photo")] + [keep_input(p, directory, f"painting{i}") for i, p in enumerate(paintings, 1)]
            args = ["fit", *self.defaults, *options, "--data.content", inputs[0], "--data.style", json.dumps(inputs[1:])]
            return self._record(Run(directory, args + self._place(directory), new=True))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def resume(self, name: str, more_steps: int) -> Run:
        if more_steps < 1:
            raise UserError(f"continue for {more_steps} more steps: give 1 or more")
        directory, record = self.find(name)
        steps = self.step(directory)  # where the run is, whatever its record says (a crash never wrote it)
        if steps is None:
            raise UserError(f"run {name} has no checkpoint to continue from; start a new one")
        self.check_room()
        args = [*record["args"], "--trainer.max_steps", str(steps + more_steps), "--ckpt_path", "last"]
        return self._record(Run(directory, args, start_step=steps))

    def from_result(self, name: str, options: Sequence[str]) -> Run:
        earlier, record = self.find(name)
        image = earlier / RESULT
        if not image.is_file():
            raise UserError(f"run {name} has no result image yet; continue it, or start a new run")
        self.check_room()
        directory = self.new_directory()
        start = ["--model.init", "image", "--model.init_image", str(image)]
        args = [*_without_place(record["args"]), *options, *start, *self._place(directory)]
        return self._record(Run(directory, args, new=True))

    def find(self, name: str) -> tuple[Path, dict]:
        """An earlier run by the name the server gave it (a path, or a name it did not give, is refused)."""
        if not isinstance(name, str) or not NAME.match(name) or not (self.root / name / RECORD).is_file():
            raise UserError(f"no run named {name!r} on this page; pick one from the gallery")
        return self.root / name, json.loads((self.root / name / RECORD).read_text())

    def earlier(self) -> list[tuple[str, Path, dict]]:
        """Earlier runs that can be continued or started from, newest first: (name, the picture the page
        serves of it, its record with ``steps`` where its checkpoint is). A run with a checkpoint is listed
        even when it has no result (a crash, or a server killed mid-run): its picture is the checkpoint's."""
        found = []
        for directory in sorted(self.root.glob("*"), reverse=True) if self.root.is_dir() else []:
            if not (NAME.match(directory.name) and (directory / RECORD).is_file()):
                continue
            try:
                record = json.loads((directory / RECORD).read_text())
                steps = self.step(directory)
                if steps is None and not (directory / RESULT).is_file():
                    continue
                # Its result, unless the checkpoint has gone further than the record of the run's end
                # (a crash, or a continue from the command line): then the checkpoint's image.
                result, checkpoint = directory / RESULT, directory / LAST
                shown = result if steps is None or (result.is_file() and record.get("steps") == steps) else checkpoint
                steps = int(record.get("steps", 0)) if steps is None else steps
                found.append((directory.name, self.served(directory, steps, shown), record | {"steps": steps}))
            except (OSError, ValueError, UserError):  # half-written, damaged, or gone meanwhile: not listed
                continue
        served = self.root / SERVED
        for pictures in served.iterdir() if served.is_dir() else []:
            # A run deleted (to make room) takes its pictures with it; the page's own (.builtin) stay.
            if (NAME.match(pictures.name) or CLIP_NAME.match(pictures.name)) and not (self.root / pictures.name).is_dir():
                shutil.rmtree(pictures, ignore_errors=True)
        return found

    def step(self, directory: Path) -> Optional[int]:
        """The step of the run's last checkpoint, where a continue goes on from (``None``: none, or damaged);
        read once for each version of the file."""
        path = directory / LAST
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        known = self._steps.get(path)
        if known is None or known[0] != key:
            self._steps[path] = known = (key, checkpoint_step(path))
        return known[1]

    def served(self, directory: Path, steps: int, source: Path) -> Path:
        """``source`` (the run's result, or its last checkpoint, shown by its image) in ``SERVED``, made
        once for each version of it; an earlier version's copy is removed."""
        stat = source.stat()
        folder = self.root / SERVED / directory.name
        target = folder / f"{steps}-{stat.st_mtime_ns:x}-{stat.st_size:x}" / RESULT
        if target.is_file():
            return target
        for old in folder.glob("*") if folder.is_dir() else []:
            shutil.rmtree(old, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ckpt":
            _render(source, target)
        else:
            link_or_copy(source, target)
        return target

    def storage(self) -> int:
        """Bytes in the runs folder (a file with several links counted once)."""
        seen, total = set(), 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                try:
                    stat = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
        return total

    def check_room(self) -> None:
        if self.max_bytes is None:
            return
        used = self.storage()
        if used >= self.max_bytes:
            raise UserError(
                f"the page's runs take {used / 1e9:.3g} GB, its limit is {self.max_bytes / 1e9:.3g} GB (the server's --max-storage-gb): "
                "no new run starts until old runs are deleted from its --runs folder or the server is given a larger limit"
            )

    def new_directory(self, prefix: str = "") -> Path:
        # The time and a random token; mkdir without exist_ok, so two servers never share one.
        while True:
            directory = self.root / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(8)}"
            try:
                directory.mkdir(parents=True)
                return directory
            except FileExistsError:
                continue

    def _place(self, directory: Path) -> list[str]:
        logger = "--trainer.logger.init_args."
        return [logger + "save_dir", str(directory.parent), logger + "name", "", logger + "version", directory.name]

    def _record(self, run: Run) -> Run:
        self._write(run.directory, {"args": run.args, "steps": run.start_step, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        return run

    @staticmethod
    def _write(directory: Path, record: dict) -> None:
        write_record(directory, record)


def check_upload(source: str, option: str, long_side: Optional[int], uploads: Optional[Path]) -> None:
    """What the run checks of an image, before anything is written: that it decodes within the limits
    (``inputs.images.header_size``: readable, not a bomb), from its header. An upload refused here is
    removed when it is in ``uploads`` (the upload folder): no later request could use it."""
    if source.startswith(BUILTIN_PREFIX):
        return
    upload = Path(source)
    try:
        data = upload.read_bytes()
    except OSError:
        raise UserError(f"{option}: the upload {upload.name} is no longer on the server; upload it again") from None
    try:
        header_size(data, long_side, upload.name, option)
    except UserError:
        if uploads is not None and upload.resolve().is_relative_to(uploads.resolve()):
            upload.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                upload.parent.rmdir()  # Gradio keeps each upload in a folder of its own
        raise


def keep_input(source: str, directory: Path, stem: str) -> str:
    """A built-in name as it is; an upload copied into the run's ``inputs/`` as ``stem`` + its extension."""
    if source.startswith(BUILTIN_PREFIX):
        return source
    suffix = Path(source).suffix.lower()
    target = directory / "inputs" / (stem + (suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""))
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, target)
    return str(target)


def _without_place(args: Sequence[str]) -> list[str]:
    """An earlier run's options less its directory, checkpoint and start image (a new run sets its own)."""
    own = ("--trainer.logger.init_args.", "--ckpt_path", "--model.init", "--trainer.max_steps")
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith(own):
            skip = "=" not in arg
        else:
            kept.append(arg)
    return kept


def link_or_copy(source: Path, target: Path) -> None:
    """``source`` at ``target``, whole or not at all: a hard link (no second copy on disk; the run replaces
    its files rather than writing into them, so the link keeps this version), else a copy."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _render(checkpoint: Path, target: Path) -> None:
    """The image of ``checkpoint`` as a PNG: what the gallery shows of a run cut short before its result."""
    from PIL import Image

    from nst_lightning.inputs.checkpoints import load_start_image  # its checks: weights_only, the shape, finite pixels

    picture = Image.fromarray(as_array(load_start_image(str(checkpoint), option="the run's last.ckpt")))
    atomic_write(target, lambda handle: picture.save(handle, format="PNG"))


