"""Signals: how SIGINT (Ctrl-C) and SIGTERM end a run, and the one line that says what was kept.

In training, both stop at the end of the current step and a checkpoint and the image are written
(``callbacks/checkpoint.py``, ``callbacks/result.py``), so a resume continues exactly where the run
stopped; a second signal stops at once. Outside training SIGTERM acts as Ctrl-C does; once the run
has ended, a signal ends the process with one line and 128 + N (``exit_on_signal``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Iterator, Optional

from lightning.pytorch.utilities.exceptions import SIGTERMException

from nst_lightning.utilities.errors import RunInterrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

def is_graceful_stop(exception: BaseException) -> bool:
    """A stop at a step boundary after which the state is consistent and worth saving."""
    if isinstance(exception, RunInterrupted):
        return exception.saved
    # Lightning's own SIGTERM handling (outside the window where StepCheckpoint handles the signal)
    # also stops at a step boundary.
    return isinstance(exception, SIGTERMException)



def steps(n: Optional[int]) -> str:
    return "1 step" if n == 1 else f"{n} steps"


@contextlib.contextmanager
def sigterm_like_ctrl_c() -> Iterator[None]:
    """Outside training (where StepCheckpoint stops at a step boundary), SIGTERM ends the program
    like Ctrl-C does: one line and exit 143, instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum, None, saved=False)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def stopped_message(err: RunInterrupted) -> str:
    name = signal.Signals(err.signum).name
    if err.step is None:
        return f"nst_lightning: stopped by {name} outside training; nothing was saved"
    if err.saved:
        return f"nst_lightning: stopped by {name} after {steps(err.step)}; {err.kept}"
    return f"nst_lightning: stopped at once by {name}, nothing saved since the last checkpoint; {err.kept}"


def exit_on_signal() -> None:
    """From here to the process's end (the run is over: saved, stopped or refused), SIGINT or SIGTERM
    ends it with one line and 128 + N, never with a traceback or a death by the signal."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _stop_while_exiting)


def _stop_while_exiting(signum: int, frame: Any) -> None:
    # Python's shutdown (threads, TensorBoard's writer, torch) takes a moment after a run.
    print(f"nst_lightning: stopped by {signal.Signals(signum).name} while exiting", file=sys.stderr)
    sys.stderr.flush()
    os._exit(128 + signum)
