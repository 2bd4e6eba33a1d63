"""The page's runs, without the page: each one a real ``fit`` through ``run.entry.cli_main`` in a
directory of ``--runs`` that the server names, and what the page reads while it goes.

- ``Runs.fresh``: a new run of a photo and paintings (uploads are copied into the run's ``inputs/`` under
  the server's names, so the run can be resumed after the upload cache is gone, and a user's file name
  names nothing on the server). ``Runs.resume``: the same run, further (``--ckpt_path last``, a larger
  ``--trainer.max_steps``). ``Runs.from_result``: a new run that starts from an earlier one's image.
- ``execute``: runs one in a thread (the page's handler stays free to stream) with its output in
  ``ui.log``, yielding ``live.Update``s and at the end an ``Outcome`` with the run's one-line error, if any.
- ``ui.json`` in each run: its ``fit`` options, so the gallery can show and continue it.

No gradio here: the tests and other front ends can drive runs through it.
"""

from __future__ import annotations

import io
import itertools
import json
import queue
import re
import shutil
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from nst_lightning.inputs.sources import BUILTIN_PREFIX
from nst_lightning.run.capture import output_to
from nst_lightning.ui.live import Update, close_channel, open_channel
from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write

RECORD = "ui.json"
LOG = "ui.log"
RESULT = "generated.png"
ERROR_PREFIX = "nst_lightning: error: "
NAME = re.compile(r"^\d{8}-\d{6}-\d+$")  # what the server names runs; anything else from the page is refused
_COUNTER = itertools.count(1)


@dataclass
class Run:
    directory: Path
    args: list[str]  # the fit command line, without the page's live callback
    start_step: int = 0


@dataclass
class Outcome:
    code: int  # cli_main's exit code: 0 done, 2 refused (error is its line), 128 + N stopped
    error: Optional[str]
    steps: int
    result: Optional[Path]
    log: Path

    @property
    def stopped(self) -> bool:
        return self.code > 128


class Runs:
    """The runs under ``root``; ``defaults`` are the fit options every run starts from (``--config``...)."""

    def __init__(self, root: Path, defaults: Sequence[str]) -> None:
        self.root, self.defaults = root, list(defaults)

    def fresh(self, photo: str, paintings: Sequence[str], options: Sequence[str]) -> Run:
        if not paintings:
            raise UserError("give a painting (upload one, or pick a built-in one)")
        directory = self._new_directory()
        inputs = [_keep(photo, directory, "photo")] + [_keep(p, directory, f"painting{i}") for i, p in enumerate(paintings, 1)]
        args = ["fit", *self.defaults, *options, "--data.content", inputs[0], "--data.style", json.dumps(inputs[1:])]
        return self._record(Run(directory, args + self._place(directory)))

    def resume(self, name: str, more_steps: int) -> Run:
        if more_steps < 1:
            raise UserError(f"continue for {more_steps} more steps: give 1 or more")
        directory, record = self.find(name)
        if not (directory / "checkpoints" / "last.ckpt").is_file():
            raise UserError(f"run {name} has no checkpoint to continue from; start a new one")
        steps = int(record.get("steps", 0))
        args = [*record["args"], "--trainer.max_steps", str(steps + more_steps), "--ckpt_path", "last"]
        return self._record(Run(directory, args, start_step=steps))

    def from_result(self, name: str, options: Sequence[str]) -> Run:
        earlier, record = self.find(name)
        image = earlier / RESULT
        if not image.is_file():
            raise UserError(f"run {name} has no result image yet; continue it, or start a new run")
        directory = self._new_directory()
        start = ["--model.init", "image", "--model.init_image", str(image)]
        args = [*_without_place(record["args"]), *options, *start, *self._place(directory)]
        return self._record(Run(directory, args))

    def find(self, name: str) -> tuple[Path, dict]:
        """An earlier run by the name the server gave it (a path, or a name it did not give, is refused)."""
        record = self.root / name / RECORD
        if not NAME.match(name or "") or not record.is_file():
            raise UserError(f"no run named {name!r} under {self.root}; pick one from the gallery")
        return record.parent, json.loads(record.read_text())

    def earlier(self) -> list[tuple[str, Path, dict]]:
        """Earlier runs with a result, newest first: (name, image, record)."""
        found = []
        for directory in sorted(self.root.glob("*"), reverse=True) if self.root.is_dir() else []:
            if NAME.match(directory.name) and (directory / RECORD).is_file() and (directory / RESULT).is_file():
                try:
                    found.append((directory.name, directory / RESULT, json.loads((directory / RECORD).read_text())))
                except (OSError, ValueError):
                    continue
        return found

    def _new_directory(self) -> Path:
        # A timestamp and this server's counter; mkdir without exist_ok, so two servers never share one.
        while True:
            directory = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_COUNTER)}"
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
        _write_record(directory, record)


def _keep(source: str, directory: Path, stem: str) -> str:
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


def execute(run: Run, every_n_steps: int, session: str = "") -> Iterator[Union[Update, Outcome]]:
    """Run ``run`` to its end in a thread, yielding its updates, then its ``Outcome``. ``live.stop(session)``
    or closing the generator (the page went away) stops it at the next step boundary, with a checkpoint."""
    name = f"{session}:{uuid.uuid4().hex}"
    channel = open_channel(name)
    live = ["--trainer.callbacks+=nst_lightning.ui.live.LivePreview", "--trainer.callbacks.channel", name]
    live += ["--trainer.callbacks.every_n_steps", str(every_n_steps), "--trainer.enable_progress_bar", "false"]
    done: list[Outcome] = []
    thread = threading.Thread(target=_fit, args=(run, run.args + live, done), name=f"nst-ui-{run.directory.name}", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not channel.updates.empty():
            try:
                yield channel.updates.get(timeout=0.1)
            except queue.Empty:
                continue
        yield done[0]
    finally:
        channel.stop.set()
        thread.join()  # the next queued run starts only when this one has written its files
        close_channel(name)


def _write_record(directory: Path, record: dict) -> None:
    text = json.dumps(record, indent=1).encode()
    atomic_write(directory / RECORD, lambda handle: handle.write(text))


def _fit(run: Run, args: list[str], done: list[Outcome]) -> None:
    from nst_lightning.run.entry import cli_main  # torch and Lightning: only once a run starts

    output, code = io.StringIO(), 0
    with output_to(run.directory / LOG, output):
        try:
            cli_main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as err:  # a bug, not the input: the traceback goes to the log, the page gets one line
            traceback.print_exc()
            print(f"{ERROR_PREFIX}unexpected {type(err).__name__}: {err} (traceback in {run.directory / LOG})")
            code = 1
    lines = [line[line.index(ERROR_PREFIX) :] for line in output.getvalue().splitlines() if ERROR_PREFIX in line]
    error = lines[-1] if lines and code not in (0,) and code <= 128 else None
    result, steps = run.directory / RESULT, _checkpoint_step(run.directory / "checkpoints" / "last.ckpt")
    if steps is not None:  # recorded by the run's thread, so also when the page has gone: what "continue" adds to
        _write_record(run.directory, json.loads((run.directory / RECORD).read_text()) | {"steps": steps})
    done.append(Outcome(code, error, run.start_step if steps is None else steps, result if result.is_file() else None, run.directory / LOG))


def _checkpoint_step(path: Path) -> Optional[int]:
    """The step the run's last checkpoint holds (where a resume goes on from), read without its tensors."""
    if not path.is_file():
        return None
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except Exception:  # a damaged file: a resume says so, in one line
        return None
