"""One of the page's runs, made: ``execute`` runs it (a ``fit`` through ``run.entry.cli_main``) in the
one thread this process makes its runs in, with its output in its ``ui.log``, yielding ``live.Update``s
while it goes and at the end an ``Outcome`` with its one-line error, if any. The page's handler stays free
to stream; Stop, or closing the generator (the page went away), stops the run at a step boundary.

After each run: its step (its last checkpoint's) in ``ui.json``, so that a continue goes on from there; a
new run refused before its first checkpoint removed whole; and what it left in memory freed (a fresh
context for each run, a collection after it, one thread for all: the server's memory stays flat,
docs/lab/reliability.md).

No gradio here: the tests and other front ends can drive runs through it.
"""

from __future__ import annotations

import contextvars
import gc
import io
import json
import queue
import shutil
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from nst_lightning.run.capture import output_to
from nst_lightning.ui.live import Update, close_channel, open_channel
from nst_lightning.utilities.files import atomic_write

RECORD = "ui.json"
LOG = "ui.log"
RESULT = "generated.png"
ERROR_PREFIX = "nst_lightning: error: "
LAST = Path("checkpoints") / "last.ckpt"


@dataclass
class Run:
    directory: Path
    args: list[str]  # the fit command line, without the page's live callback
    start_step: int = 0
    new: bool = False  # made by this request: removed again if the run is refused before its first checkpoint


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


def execute(run: Run, every_n_steps: int, session: str = "") -> Iterator[Union[Update, Outcome]]:
    """Run ``run`` to its end in the run thread, yielding its updates, then its ``Outcome``. ``live.stop(session)``
    or closing the generator (the page went away) stops it at the next step boundary, with a checkpoint."""
    name = f"{session}:{uuid.uuid4().hex}"
    channel = open_channel(name)
    live = ["--trainer.callbacks+=nst_lightning.ui.live.LivePreview", "--trainer.callbacks.channel", name]
    live += ["--trainer.callbacks.every_n_steps", str(every_n_steps), "--trainer.enable_progress_bar", "false"]
    done: list[Outcome] = []
    finished = in_run_thread(lambda: _fit(run, run.args + live, done))
    try:
        while not finished.is_set() or not channel.updates.empty():
            try:
                yield channel.updates.get(timeout=0.1)
            except queue.Empty:
                continue
        unexpected = f"{ERROR_PREFIX}the run ended unexpectedly (traceback in the server's log)"
        yield done[0] if done else Outcome(1, unexpected, run.start_step, None, run.directory / LOG)
    finally:
        channel.stop.set()
        finished.wait()  # the next queued run starts only when this one has written its files
        close_channel(name)


_JOBS: "queue.Queue[tuple[Callable[[], None], threading.Event]]" = queue.Queue()
_RUNNER: list[threading.Thread] = []
_RUNNER_LOCK = threading.Lock()


def in_run_thread(job: Callable[[], None]) -> threading.Event:
    """``job`` in the one thread that makes this process's runs, one after the other (started on first use;
    a daemon, so a run stuck before its first step never holds the process open); the event is set when it
    has ended and what it left is freed. One thread, not one a run: glibc gives threads their own malloc
    arenas, and what each run freed stayed fragmented across them, never returned to the system."""
    finished = threading.Event()
    with _RUNNER_LOCK:
        if not _RUNNER:
            _RUNNER.append(threading.Thread(target=_run_jobs, name="nst-ui-runs", daemon=True))
            _RUNNER[0].start()
    _JOBS.put((job, finished))
    return finished


def _run_jobs() -> None:
    while True:
        job, finished = _JOBS.get()
        try:
            # In a context of its own, as in a new thread: what a run sets in context variables (jsonargparse
            # keeps its parser there, and through it the run) goes with it.
            contextvars.Context().run(job)
        except Exception:  # a bug after the run (its outcome is lost): the thread goes on for the next one
            traceback.print_exc(file=sys.__stderr__)
        finally:
            # The run's Trainer, callbacks and module refer to each other, so only the cycle collector frees
            # them, and its full passes come ever more rarely as the server's objects grow: without this,
            # each run's ~70 MB (its VGG19, images, optimizer) stayed until one came.
            del job
            gc.collect()
            finished.set()


def write_record(directory: Path, record: dict) -> None:
    text = json.dumps(record, indent=1).encode()
    atomic_write(directory / RECORD, lambda handle: handle.write(text))


def _fit(run: Run, args: list[str], done: list[Outcome]) -> None:
    from nst_lightning.run.entry import cli_main  # torch and Lightning: only once a run starts

    output, code = io.StringIO(), 0
    with output_to(run.directory / LOG, output):
        try:
            cli_main(args)  # its CLI object (Trainer, module, data) is dropped here (freed: _run_jobs)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as err:  # a bug, not the input: the traceback goes to the log, the page gets one line
            traceback.print_exc()
            print(f"{ERROR_PREFIX}unexpected {type(err).__name__}: {err} (traceback in {run.directory / LOG})")
            code = 1
    lines = [line[line.index(ERROR_PREFIX) :] for line in output.getvalue().splitlines() if ERROR_PREFIX in line]
    error = lines[-1] if lines and code not in (0,) and code <= 128 else None
    result, steps = run.directory / RESULT, checkpoint_step(run.directory / LAST)
    if run.new and code == 2 and steps is None:  # refused before it began: nothing of it is kept
        shutil.rmtree(run.directory, ignore_errors=True)
        done.append(Outcome(code, error, 0, None, run.directory / LOG))
        return
    if steps is not None:  # recorded by the run's thread, so also when the page has gone: what "continue" adds to
        write_record(run.directory, json.loads((run.directory / RECORD).read_text()) | {"steps": steps})
    done.append(Outcome(code, error, run.start_step if steps is None else steps, result if result.is_file() else None, run.directory / LOG))


def checkpoint_step(path: Path) -> Optional[int]:
    """The step the run's last checkpoint holds (where a resume goes on from), read without its tensors."""
    if not path.is_file():
        return None
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except Exception:  # a damaged file: a resume says so, in one line
        return None
