"""The exceptions that end a run on purpose.

The CLI turns each into a single line on stderr (no traceback): a ``UserError`` exits with code 2
and says what is wrong *and* which option or file to change; a ``RunInterrupted`` exits with
128 + the signal number, as a shell reports a process ended by that signal.
"""

from __future__ import annotations

import signal
from typing import Optional


class UserError(Exception):
    """A problem with the user's input or options, with the fix in the message."""


class NonFiniteLossError(UserError):
    """The loss (or the image) became NaN or infinite: the optimisation diverged."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class RunInterrupted(BaseException):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM, at a step boundary, after saving.

    A ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception`` swallows it, but
    not a ``KeyboardInterrupt``: Lightning would turn that into ``sys.exit(1)`` and lose which signal
    it was and where the state was saved.
    """

    kept = "nothing was saved"  # what the run leaves to go on from; the CLI fills it in

    def __init__(self, signum: int, step: Optional[int], saved: bool = True) -> None:
        self.signum = signum
        self.step = step  # None: outside training
        self.saved = saved  # False: stopped at once (a second signal, or outside training), nothing saved
        super().__init__(f"{signal.Signals(signum).name} after {step} steps")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
