"""The one way to start a run: ``cli_main(args)``, a ``fit`` (or another LightningCLI subcommand)
from command-line arguments, with the project's error handling. ``python -m nst_lightning fit``
(``__main__``), each job of ``batch`` (``batch/jobs.py``), each frame of ``video`` and each run of the
browser interface (``ui``) call it, so every run has the same checks, files and one-line errors.

Exit codes (as ``SystemExit``): 0 done; 2 a ``UserError`` (one line naming the option to change); 128 + N
stopped by signal N (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), after saving a checkpoint and the image when
training had started. Never a traceback for any of these.
"""

from __future__ import annotations

import signal
import sys
from argparse import ArgumentError
from typing import Callable, Optional

from lightning.fabric.utilities.exceptions import MisconfigurationException

from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.model.module import StyleTransfer
from nst_lightning.run.cli import TRAINER_DEFAULTS, StyleTransferCLI
from nst_lightning.run.quiet import NoAdvertisements, disk_errors_quiet_in_threads, hide_expected_warnings
from nst_lightning.run.rerun import configs_from_images
from nst_lightning.utilities.errors import RunInterrupted, UserError, program_name
from nst_lightning.utilities.signals import exit_on_signal, hangup_tolerant_output, say, sigterm_like_ctrl_c, stopped_message


def cli_main(args: Optional[list[str]] = None, exit_on_signals: bool = False) -> StyleTransferCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``). User errors exit with code 2 and one line;
    SIGINT/SIGTERM/SIGHUP with 130/143/129 and one line saying what was saved. ``exit_on_signals`` (the program,
    not an embedding process): once the run has ended, a signal ends the process (``exit_on_signal``)."""
    ending = exit_on_signal if exit_on_signals else (lambda: None)
    hide_expected_warnings()
    NoAdvertisements.install()
    try:
        with sigterm_like_ctrl_c(), disk_errors_quiet_in_threads(), hangup_tolerant_output():
            return _run(args, ending)
    except RunInterrupted as err:
        ending()
        say(stopped_message(err))  # after a SIGHUP, to a terminal that is gone: dropped, the code says it
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        ending()
        say("nst_lightning: stopped by SIGINT outside training; nothing was saved")
        raise SystemExit(128 + signal.SIGINT) from None


def _run(args: Optional[list[str]], ending: Callable[[], None]) -> StyleTransferCLI:
    try:
        return StyleTransferCLI(
            StyleTransfer,
            StyleTransferData,
            args=configs_from_images(args),  # fit --config generated.png reruns its run (run/rerun.py)
            trainer_defaults=TRAINER_DEFAULTS,
            auto_configure_optimizers=False,  # the module builds its own optimizer over the image
            save_config_kwargs={"overwrite": True},  # a resume writes config.yaml into the same run
            # exit_on_error=False: a bad option raises instead of printing the 90-line usage; we print
            # one line below.
            parser_kwargs={"prog": program_name(), "exit_on_error": False},
        )
    except (ArgumentError, UserError, MisconfigurationException) as err:
        ending()
        print(refusal_line(err), file=sys.stderr)
        raise SystemExit(2) from None


def refusal_line(err: Exception) -> str:
    """The one line a refused run prints: an option jsonargparse refused, with the way to the options
    (``fit --help``), or a ``UserError`` (as the command line names options) or Lightning's refusal."""
    if isinstance(err, ArgumentError):
        message = " ".join(line.strip() for line in str(err).splitlines())
        return f"nst_lightning: error: {message}; see {program_name()} fit --help"
    message = err.for_cli() if isinstance(err, UserError) else str(err)
    return f"nst_lightning: error: {message.strip().splitlines()[0]}"
