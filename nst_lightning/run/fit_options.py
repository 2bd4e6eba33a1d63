"""The ``fit`` options of many runs (a batch's jobs, a video's frames), checked once, before any of them
writes anything.

Every job (or frame) is a ``fit`` with the same options (``--config``, ``--model.*``, ``--data.image_size``,
``--trainer.*``...), so an error in them is every job's. ``check_fit_options`` finds it first: the
first job's own command line goes through the run's own CLI (``run.cli.StyleTransferCLI``: its
parser, its checks after parsing, the model, datamodule and Trainer built from the result), which
stops there, before ``fit``, having read no photo and written nothing. An error is one line
(``UsageError``) and the batch ends with exit 2, before ``--out`` is even created. What the batch
needs to know of the jobs comes back as ``FitSettings``.

The jobs' inputs (a photo that cannot be read, a size that does not fit) are each job's own: they
are checked by each job's ``fit``, and fail that job alone.
"""

from __future__ import annotations

import io
from argparse import ArgumentError
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException

from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.model.module import StyleTransfer
from nst_lightning.run.capture import output_to
from nst_lightning.run.cli import TRAINER_DEFAULTS, StyleTransferCLI
from nst_lightning.run.entry import program_name
from nst_lightning.run.quiet import NoAdvertisements, hide_expected_warnings
from nst_lightning.utilities.errors import UserError


def split_command_line(parser: Any, argv: list[str], own: tuple[str, ...], own_message: str) -> tuple[Any, list[str]]:
    """A command's own options (``parser``'s) and the ``fit`` options it passes on to each run, which
    may not name any of ``own`` (set by the command for each run: ``"{name} " + own_message``), with
    ``--config`` files as absolute paths (a Ray worker may start in another directory, and a run's
    identity must not depend on where it was started). ``UserError`` in one line."""
    import os

    try:
        known, rest = parser.parse_known_args(argv)
    except ArgumentError as err:
        raise UserError(f"{err}; see {parser.prog} --help") from None
    for arg in rest:
        name = arg.split("=", 1)[0]
        if name.startswith(own):
            raise UserError(f"{name} {own_message}")

    def absolute(i: int, arg: str) -> str:
        if i > 0 and rest[i - 1] == "--config" and os.path.isfile(arg):
            return os.path.abspath(arg)
        if arg.startswith("--config=") and os.path.isfile(arg.split("=", 1)[1]):
            return "--config=" + os.path.abspath(arg.split("=", 1)[1])
        return arg

    return known, [absolute(i, arg) for i, arg in enumerate(rest)]


class UsageError(Exception):
    """An option error shared by every run of a batch or a video: the command stops at the first."""


@dataclass(frozen=True)
class FitSettings:
    """What every job's ``fit`` will do, as its options say."""

    max_steps: int  # --trainer.max_steps: a job finished with fewer is extended to them
    result_filename: str  # --result.filename: the file that makes a job done
    image_size: int  # --data.image_size: the long side of the results, for grouping
    config: Any = field(default=None, compare=False, repr=False)  # the whole parsed fit configuration


class _Checked(Exception):
    """Raised by ``_CheckOnly`` once the classes are built: the check runs nothing."""

    def __init__(self, config: Any) -> None:
        super().__init__("checked")
        self.config = config


class _CheckOnly(StyleTransferCLI):
    """The run's CLI, up to and including building its classes (LightningCLI's public hooks)."""

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        raise _Checked(self.config[self.subcommand])


def check_fit_options(args: list[str]) -> FitSettings:
    """Parse and build the first job's ``fit`` (``args``, as ``jobs.fit_arguments`` makes them) as the
    job itself will; ``UsageError`` (one line, the fix in it) if its options are wrong."""
    hide_expected_warnings()
    NoAdvertisements.install()
    output = io.StringIO()  # Lightning's lines about the devices: a job's log says them
    try:
        with output_to(None, output):
            _CheckOnly(
                StyleTransfer,
                StyleTransferData,
                args=args,
                trainer_defaults=TRAINER_DEFAULTS,
                auto_configure_optimizers=False,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": program_name(), "exit_on_error": False},
            )
    except _Checked as checked:
        config = checked.config
    except ArgumentError as err:  # the words a job's fit would print
        message = " ".join(line.strip() for line in str(err).splitlines())
        raise UsageError(f"{message}; see {program_name()} fit --help") from None
    except UserError as err:
        raise UsageError(err.for_cli().strip().splitlines()[0]) from None
    except SystemExit:  # fit's --help or --print_config: printed, then the parser exits
        raise UsageError(f"--help and --print_config show one fit's options: run them with {program_name()} fit") from None
    except MisconfigurationException as err:
        raise UsageError(str(err).strip().splitlines()[0]) from None
    except Exception as err:  # e.g. Lightning's ValueError for a strategy it does not know: every job's, as one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UsageError(f"{type(err).__name__}: {first}") from None
    else:  # pragma: no cover - the hook always raises
        raise RuntimeError("the fit options were not checked")
    max_steps, filename = config.get("trainer.max_steps"), str(config.get("result.filename"))
    if max_steps is None or max_steps < 1:  # as a job's fit says it, before it writes anything
        raise UsageError("--trainer.max_steps must be a positive number of optimisation steps")
    if PurePath(filename).is_absolute() or ".." in PurePath(filename).parts:
        raise UsageError(
            f"--result.filename {filename}: each job of a batch (frame of a video) writes its result into its own run directory; "
            "give a file name, e.g. --result.filename result.jpg"
        )
    return FitSettings(max_steps=int(max_steps), result_filename=filename, image_size=int(config.get("data.image_size")), config=config)
