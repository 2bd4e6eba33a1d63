"""Signals: how SIGINT (Ctrl-C), SIGTERM and SIGHUP end a run, and the one line that says what was kept.

In training, all three stop at the end of the current step and a checkpoint and the image are written
(``callbacks/checkpoint.py``, ``callbacks/result.py``), so a resume continues exactly where the run
stopped; a second signal stops at once. Outside training SIGTERM and SIGHUP act as Ctrl-C does; once
the run has ended, a signal ends the process with one line and 128 + N (``exit_on_signal``).

SIGHUP is what a closed terminal or a dropped ssh session sends: a run treats it as SIGTERM (exit 129),
first pointing its output away from the terminal that is gone (``leave_dead_terminal``), where every
write would fail with EIO. A run that goes on after its terminal closed (its SIGHUP ignored, e.g.
``trap '' HUP``) meets the same EIO, so the streams of a run on a terminal drop what they cannot write
(``hangup_tolerant_output``) rather than raise. A program started under ``nohup`` has SIGHUP ignored, and it stays ignored
(``stop_signals``): that user asked for the run to outlive the terminal.

Imports nothing heavy (no torch, no Lightning): ``__main__`` uses it before torch is imported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import threading
from typing import Any, Iterator, Optional

from nst_lightning.utilities.errors import RunInterrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a run gracefully, as handled now: ``STOP_SIGNALS`` less SIGHUP when it is
    ignored (``nohup``); Ctrl-C and SIGTERM are handled whatever a shell set, as before."""
    return tuple(s for s in STOP_SIGNALS if not (s == signal.SIGHUP and signal.getsignal(s) is signal.SIG_IGN))


def leave_dead_terminal(signum: int) -> None:
    """On SIGHUP, point stdin, stdout and stderr that are a terminal at ``/dev/null``: the terminal has
    hung up, so a progress bar or a message written to it would fail with EIO and turn a clean stop
    into an error. A hung-up terminal no longer answers ``isatty``, so any character device other
    than ``/dev/null`` counts. Files and pipes are left alone (a log file still gets the last line)."""
    if signum == signal.SIGHUP:
        _terminals_to_null()


def _terminals_to_null() -> None:
    """Point stdin, stdout and stderr that are a character device other than ``/dev/null`` at it."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        null_device = os.fstat(null).st_rdev
    except OSError:
        return
    try:
        for fd in (0, 1, 2):
            try:
                mode = os.fstat(fd)
            except OSError:
                continue
            if stat.S_ISCHR(mode.st_mode) and mode.st_rdev != null_device:
                os.dup2(null, fd)
    finally:
        os.close(null)


class _HangupTolerant:
    """A terminal's text stream whose writes fail quietly once the terminal has hung up (EIO): a run
    whose SIGHUP is ignored goes on to its end, as its user asked, instead of its progress bar ending
    it with a traceback, exit 1 and nothing saved. Other errors raise."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _hung_up(self, err: OSError) -> None:
        if err.errno != errno.EIO:
            raise err
        _terminals_to_null()  # what is still buffered then goes to /dev/null

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as err:
            self._hung_up(err)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            self._hung_up(err)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _on_a_terminal(stream: Any) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def hangup_tolerant_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr``, where they are a terminal, as ``_HangupTolerant`` streams
    for the duration (others, e.g. pytest's capture or a log file, are left as they are)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (_HangupTolerant(s) if _on_a_terminal(s) else s for s in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def say(line: str) -> None:
    """Print ``line`` on stderr; a stream that is gone (a closed pipe or terminal) drops it, since
    the exit code says the same."""
    try:
        print(line, file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def steps(n: Optional[int]) -> str:
    return "1 step" if n == 1 else f"{n} steps"


@contextlib.contextmanager
def sigterm_like_ctrl_c() -> Iterator[None]:
    """Outside training (where StepCheckpoint stops at a step boundary), SIGTERM and SIGHUP end the
    program like Ctrl-C does: one line and exit 143 or 129, instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        leave_dead_terminal(signum)
        raise RunInterrupted(signum, None, saved=False)

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals() if signum != signal.SIGINT}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def stopped_message(err: RunInterrupted) -> str:
    name = signal.Signals(err.signum).name
    if err.step is None:
        return f"nst_lightning: stopped by {name} outside training; nothing was saved"
    if err.saved:
        return f"nst_lightning: stopped by {name} after {steps(err.step)}; {err.kept}"
    return f"nst_lightning: stopped at once by {name}, nothing saved since the last checkpoint; {err.kept}"


def exit_on_signal() -> None:
    """From here to the process's end (the run is over: saved, stopped or refused), SIGINT, SIGTERM or
    SIGHUP ends it with one line and 128 + N, never with a traceback or a death by the signal."""
    if threading.current_thread() is threading.main_thread():
        for signum in stop_signals():
            signal.signal(signum, _stop_while_exiting)


def _stop_while_exiting(signum: int, frame: Any) -> None:
    # Python's shutdown (threads, TensorBoard's writer, torch) takes a moment after a run.
    leave_dead_terminal(signum)
    say(f"nst_lightning: stopped by {signal.Signals(signum).name} while exiting")
    os._exit(128 + signum)
