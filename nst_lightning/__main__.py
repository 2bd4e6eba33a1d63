import os
import signal
import sys


def _stop_while_starting(signum: int, frame: object) -> None:
    # Ctrl-C or SIGTERM during the imports: one line and 128 + N, not a KeyboardInterrupt traceback
    # (or, for SIGTERM, a silent death). os._exit, not an exception: one raised in the middle of
    # numpy's or scipy's imports can end in a RecursionError page instead. Nothing is written yet.
    print(f"nst_lightning: stopped by {signal.Signals(signum).name} while starting; nothing was saved", file=sys.stderr)
    sys.stderr.flush()
    os._exit(128 + signum)


def main() -> None:
    """``python -m nst_lightning`` and the ``nst-lightning`` command."""
    previous = {signum: signal.signal(signum, _stop_while_starting) for signum in (signal.SIGINT, signal.SIGTERM)}
    from nst_lightning.cli import cli_main, exit_on_signal

    for signum, handler in previous.items():
        signal.signal(signum, handler)
    try:
        cli_main(exit_on_signals=True)
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
