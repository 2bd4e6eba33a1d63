"""Signals: how SIGINT (Ctrl-C), SIGTERM and SIGHUP end every command, in each phase of a process, and
the one line that says what was kept. The one owner of signal handling: every handler the program
installs is installed here.

- While starting (``while_starting``, from ``__main__``, before torch and Lightning are imported): one
  line and 128 + N at once, nothing written yet.
- In a run, outside training (``sigterm_like_ctrl_c``, ``run/entry.py``): SIGTERM and SIGHUP act as
  Ctrl-C does, ``RunInterrupted`` with nothing saved.
- In training (``StepBoundaryStop``, installed by ``callbacks/checkpoint.StepCheckpoint``): the first
  signal stops the run at the end of the current step, and a checkpoint and the image are written
  (``callbacks/checkpoint.py``, ``callbacks/result.py``), so a resume continues exactly where the run
  stopped; a second one stops at once. (The page's Stop is no signal: ``ui/live.py`` raises the same
  ``RunInterrupted`` at a step boundary, since signals only reach the main thread.)
- Between the runs of a command that makes many (``sigterm_between_runs``: ``batch``, ``video``):
  SIGTERM as Ctrl-C. The page's server (``sigterm_as_ctrl_c``, ``ui``): SIGTERM closes it as Ctrl-C does.
- Once the run has ended (``exit_on_signal``): a signal ends the process with one line and 128 + N,
  never a traceback or a death by the signal.

SIGHUP is what a closed terminal or a dropped ssh session sends: a run treats it as SIGTERM (exit 129),
first pointing its output away from the terminal that is gone (``leave_dead_terminal``), where every
write would fail with EIO. A run that goes on after its terminal closed (its SIGHUP ignored, e.g.
``trap '' HUP``) meets the same EIO, so the streams of a run on a terminal drop what they cannot write
(``hangup_tolerant_output``) rather than raise. A program started under ``nohup`` has SIGHUP ignored, and it stays ignored
(``stop_signals``): that user asked for the run to outlive the terminal. Lightning's own SIGTERM stop,
outside the window where ``StepBoundaryStop`` is installed, is read by ``callbacks/checkpoint.is_graceful_stop``.

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
from typing import Any, Callable, Iterable, Iterator, Optional

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
def handling(signums: Iterable[int], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for ``signums`` for the block, the previous handlers back after it. Signals reach the
    main thread only: elsewhere (a thread of the page's server) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        _restore(previous)


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def ctrl_c_taken_back() -> None:
    """The program's Ctrl-C even where its parent ignored it (``SIG_IGN`` is inherited, and Python then
    installs no ``KeyboardInterrupt``): training handles it whatever a shell set (``stop_signals``), so
    outside training it must too, or a clip's Ctrl-C between frames was lost (the clip ran to its end).
    Lightning leaves SIGINT ignored in a process after a Ctrl-C in its setup, and every process that one
    starts inherits it. Main thread only."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def lightnings_ctrl_c(stop: SystemExit) -> bool:
    """Whether ``stop`` is Lightning's answer to a Ctrl-C that reached its Trainer (``sys.exit(1)`` raised
    while handling the ``KeyboardInterrupt``), which says neither the signal nor what was saved."""
    return isinstance(stop.__context__, KeyboardInterrupt)


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """The caller's Ctrl-C handler back after the block: Lightning sets SIGINT to ``SIG_IGN`` when a Ctrl-C
    reaches its Trainer, and whether its teardown sets it back depends on where the Ctrl-C landed; left
    ignored, Ctrl-C would be dead in the process that called ``stylize()`` (a notebook's kernel). Main
    thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        _restore({signal.SIGINT: previous})


@contextlib.contextmanager
def while_starting() -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP during the imports (torch and Lightning take seconds): one line and
    128 + N, not a KeyboardInterrupt traceback (or, for SIGTERM and SIGHUP, a silent death)."""
    with handling(stop_signals(), _stop_while_starting):
        yield


def _stop_while_starting(signum: int, frame: Any) -> None:
    # os._exit, not an exception: one raised in the middle of numpy's or scipy's imports can end in a
    # RecursionError page instead. Nothing is written yet.
    leave_dead_terminal(signum)
    say(f"nst_lightning: stopped by {signal.Signals(signum).name} while starting; nothing was saved")
    os._exit(128 + signum)


@contextlib.contextmanager
def sigterm_like_ctrl_c() -> Iterator[None]:
    """Outside training (where ``StepBoundaryStop`` stops at a step boundary), SIGTERM and SIGHUP end the
    program like Ctrl-C does: one line and exit 143 or 129, instead of dying silently."""

    def stop(signum: int, frame: Any) -> None:
        leave_dead_terminal(signum)
        raise RunInterrupted(signum, None, saved=False)

    with handling([signum for signum in stop_signals() if signum != signal.SIGINT], stop):
        yield


class StepBoundaryStop:
    """In training: the first SIGINT, SIGTERM or SIGHUP asks for a stop at the end of the current step
    (``requested``: its number; the training loop makes the stop, ``StepCheckpoint`` saves); a second
    one stops at once, saving nothing (``RunInterrupted``). ``step`` gives the step in progress, ``tell``
    says the one line."""

    def __init__(self, step: Callable[[], int], tell: Callable[[str], None]) -> None:
        self.requested: Optional[int] = None
        self._step, self._tell = step, tell
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._on_signal) for signum in stop_signals()}

    def restore(self) -> None:
        _restore(self._previous)
        self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        leave_dead_terminal(signum)  # SIGHUP: the terminal is gone, and writing to it would fail
        step = self._step()
        if self.requested is not None:  # asked twice: the user wants out now
            self.restore()
            raise RunInterrupted(signum, step, saved=False)
        self.requested = signum
        self._tell(
            f"\n{signal.Signals(signum).name} received: stopping after step {step + 1}, then saving a "
            "checkpoint and the image (send it again to stop at once, without saving)"
        )


@contextlib.contextmanager
def sigterm_between_runs() -> Iterator[None]:
    """A command that makes many runs (a batch's jobs, a video's frames): between them, SIGTERM stops it as
    Ctrl-C does (``RunInterrupted``, nothing of a run to save); each run handles its own."""

    def stop(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum, None, saved=False)

    with handling([signal.SIGTERM], stop):
        yield


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does (the page's server: either closes it)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with handling([signal.SIGTERM], interrupt):
        yield


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
