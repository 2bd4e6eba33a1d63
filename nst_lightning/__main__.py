"""``python -m nst_lightning COMMAND`` and the ``nst-lightning`` command: the only module that imports
every command (``fit`` and LightningCLI's others through ``run``, ``batch``, ``video``, ``ui``), and only
once its signal handlers are in place (``utilities/signals.while_starting``)."""

import os
import sys
from typing import Optional

from nst_lightning.utilities.errors import program_name

# Cheap (no torch, no Lightning): its handlers are in place before the long imports.
from nst_lightning.utilities.signals import ctrl_c_taken_back, exit_on_signal, while_starting

# The commands, each with its one line for --help (LightningCLI's validate, test and predict are not
# among them: a style transfer has no held-out data to evaluate or predict on).
COMMANDS = {
    "fit": "style a photo in a painting's style: one run, resumable (--config, --model.*, --data.*, --trainer.*)",
    "batch": "style every photo of a list in every painting of another: a run each, a summary, a contact sheet",
    "video": "style a clip frame by frame, each frame held to the previous one by optical flow",
    "ui": "serve a page in the browser for making, watching, stopping and continuing runs",
}


def usage() -> str:
    """The program's --help: its commands, one line each."""
    prog = program_name()
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {prog} COMMAND [OPTIONS]", "", "Neural style transfer on PyTorch Lightning.", "", "commands:"]
    lines += [f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()]
    lines += ["", f"A command's options: {prog} COMMAND --help", f"A first run:         {prog} fit --config configs/quick.yaml"]
    return "\n".join(lines)


def top_level(argv: list[str]) -> Optional[int]:
    """What to do when ``argv`` names no command: print the usage (no arguments, ``-h``, ``--help``:
    exit code 0), or refuse an unknown word in one line (2). ``None``: ``argv`` names a command (or
    starts with an option, which LightningCLI reads)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS and not argv[0].startswith("-"):
        print(
            f"nst_lightning: error: {argv[0]!r} is not a command; the commands are {', '.join(COMMANDS)} "
            f"(see {program_name()} --help)",
            file=sys.stderr,
        )
        return 2
    return None


def dispatch(args: Optional[list[str]] = None, exit_on_signals: bool = False) -> object:
    """Run the command ``args`` names (default: ``sys.argv``): ``batch`` (``batch/cli.py``), ``video``
    (``video/cli.py``), ``ui`` (``ui/cli.py``), or ``fit`` (LightningCLI, ``run/entry.py``). Ends in
    ``SystemExit`` with the command's exit code, or returns the finished ``fit``'s CLI object."""
    argv = sys.argv[1:] if args is None else list(args)
    code = top_level(argv)
    if code is not None:
        raise SystemExit(code)
    from nst_lightning.run.entry import cli_main
    from nst_lightning.run.quiet import NoAdvertisements, hide_expected_warnings

    # Many fits, each through cli_main: a batch's jobs, a video's frames, the browser interface's runs.
    commands = {"batch": _batch_main, "video": _video_main, "ui": _ui_main}
    if argv[:1] and argv[0] in commands:
        hide_expected_warnings()
        NoAdvertisements.install()
        code = commands[argv[0]](argv[1:], program_name())
        if exit_on_signals:
            exit_on_signal()
        raise SystemExit(code)
    return cli_main(args, exit_on_signals=exit_on_signals)


def _batch_main(argv: list[str], prog: str) -> int:
    from nst_lightning.batch.cli import batch_main

    return batch_main(argv, prog)


def _ui_main(argv: list[str], prog: str) -> int:
    from nst_lightning.ui.cli import ui_main

    return ui_main(argv, prog)


def _video_main(argv: list[str], prog: str) -> int:
    try:
        from nst_lightning.video.cli import video_main
    except ImportError as err:  # PyAV or OpenCV missing: the extra
        if err.name not in ("av", "cv2"):
            raise
        print(f"nst_lightning: error: video needs {err.name}: pip install -e \".[video]\" (or pip install \"nst_lightning[video]\")", file=sys.stderr)
        return 2
    return video_main(argv, prog)


def main() -> None:
    """``python -m nst_lightning`` and the ``nst-lightning`` command."""
    code = top_level(sys.argv[1:])
    if code is not None:  # the usage or an unknown command: said at once, without importing torch
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    with while_starting():  # the imports that take seconds (torch, Lightning): a signal is one line
        from nst_lightning.run.entry import cli_main  # noqa: F401
    ctrl_c_taken_back()

    try:
        dispatch(exit_on_signals=True)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        exit_on_signal()
    # Everything is written, fsynced and closed by now (checkpoints, image, events, the run's lock).
    # Python's own shutdown would next restore the default signal handlers and spend a moment
    # finalising torch: a Ctrl-C or SIGTERM then would kill the finished program by the signal.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
