"""What a run's output leaves out: Lightning warnings that are wrong for this module, Lightning's
advertisements, and tracebacks of disk errors in TensorBoard's writer thread (the main thread ends
the run with one line for them). The CLI and ``stylize`` install these; nothing below the run does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from typing import Any, Iterator

from nst_lightning.utilities.files import DISK_ERRNOS

# Lightning warnings that are wrong for an image-as-parameter module, hidden by the CLI and stylize():
# the frozen VGG19 is in eval mode on purpose; the "batches" are step indices, so restarting them on
# resume is exact; a deprecation raised inside Lightning 2.6's own code by torch 2.14 on every run;
# tiled runs (manual optimization) checkpoint the state after each step, as untiled ones do, on purpose;
# `fit --config IMAGE` hands LightningCLI the image's configuration as args while sys.argv names the
# image, on purpose (the warning would print the whole configuration: the rerun says what it runs).
EXPECTED_WARNINGS = (
    r".*module\(s\) in eval mode.*",
    r".*your dataloader is not resumable.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*Using ModelCheckpoint with manual optimization.*",
    r".*LightningCLI's args parameter is intended to run from within Python.*",
)


class NoAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger/litmodels" lines, printed on every run:
    a run's output is the progress bar, this program's own lines and real warnings. Installed on
    Lightning's rank-zero logger by the CLI and ``stylize``."""

    LOGGER = "lightning.pytorch.utilities.rank_zero"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")

    @classmethod
    def install(cls) -> None:
        logger = logging.getLogger(cls.LOGGER)
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())


def hide_expected_warnings() -> None:
    """Filters ``EXPECTED_WARNINGS`` out for the rest of the process (the CLI's way)."""
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def disk_errors_quiet_in_threads() -> Iterator[None]:
    """TensorBoard writes its event file in a thread, which on a full disk prints its traceback and
    hands the error to the main thread's next write; that one ends the run with one line. So a disk
    error in a thread is not printed; any other error still is."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_ERRNOS):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
