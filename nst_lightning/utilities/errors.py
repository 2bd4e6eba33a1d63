"""The exceptions that end a run on purpose, and how their messages name options.

The CLI turns each into a single line on stderr (no traceback): a ``UserError`` exits with code 2
and says what is wrong *and* which option or file to change; a ``RunInterrupted`` exits with
128 + the signal number, as a shell reports a process ended by that signal.

The code below the CLI names *parameters*, not command-line options: a message built with
``param("model.lr")`` reads ``lr`` from Python (``str(err)``) and ``--model.lr`` on the command line
(``err.for_cli()``), so the same check serves ``StyleTransfer(lr=...)``, ``stylize(lr=...)`` and
``python -m nst_lightning fit --model.lr ...``.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Optional

# NUL cannot occur in a path, a URL or an option value, so a marked name never collides with them.
_MARK = "\x00"
_MARKED = re.compile(f"{_MARK}([A-Za-z_][\\w.]*){_MARK}")


def program_name() -> str:
    """How a message names the program: ``nst-lightning`` when run as the installed command, else
    ``python -m nst_lightning``."""
    return "nst-lightning" if Path(sys.argv[0]).name == "nst-lightning" else "python -m nst_lightning"


def param(name: str) -> str:
    """A reference to the parameter ``name`` (``"model.lr"``, ``"data.content"``, ``"trainer.max_steps"``,
    ``"ckpt_path"``) inside a ``UserError`` message."""
    return f"{_MARK}{name}{_MARK}"


class UserError(Exception):
    """A problem with the user's input or options, with the fix in the message."""

    @property
    def message(self) -> str:
        """The message with its parameter references still marked (to build a longer one from)."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        # Python wording: the parameter's own name, as StyleTransfer(...) and stylize(...) take it.
        return _MARKED.sub(lambda m: m[1].rsplit(".", 1)[-1], self.message)

    def for_cli(self) -> str:
        """The message as the CLI prints it: ``--model.lr``, ``--data.content``, ``--ckpt_path``."""
        return _MARKED.sub(lambda m: f"--{m[1]}", self.message)


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


def new_run_hint(name: str) -> str:
    return f"or start a new run from its image with {param('model.init')} image {param('model.init_image')} {name}"
