"""What a run's output leaves out: Lightning warnings that are wrong for this module, Lightning's
advertisements, Lightning's lines about itself (unless ``--verbose``), and tracebacks of disk errors
in TensorBoard's writer thread (the main thread ends the run with one line for them). The CLI and
``stylize`` install these; nothing below the run does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from typing import Any, Iterator

from nst_lightning.utilities.files import DISK_ERRNOS

# Lightning warnings that are wrong for an image-as-parameter module, hidden by the CLI and stylize():
# the frozen VGG19 is in eval mode on purpose; the "batches" are step indices, so restarting them on
# resume is exact; a deprecation raised inside Lightning 2.6's own code by torch 2.14 on every run;
# tiled runs (manual optimization) checkpoint the state after each step, as untiled ones do, on purpose;
# a run shorter than the logging interval still logs its last step (callbacks/loss_logger.py); a fresh run
# never starts in a directory that holds a run (it is refused, or gets a version of its own) and a
# resume continues its own checkpoints; a run on the CPU beside a GPU was asked for (the accelerator
# is auto unless given), with a hint for the Python API, not for these options; and the CLI hands
# LightningCLI its own command line, rewritten (``fit --config RESULT`` becomes the YAML the result carries).
EXPECTED_WARNINGS = (
    r".*module\(s\) in eval mode.*",
    r".*your dataloader is not resumable.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*Using ModelCheckpoint with manual optimization.*",
    r".*is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r"GPU available but not used.*",
    r"LightningCLI's args parameter is intended to run from within Python.*",
)

# Lightning's lines about itself, shown with --verbose only: which accelerators exist, the mixed
# precision it set up (the precision policy's own line says why, where it chose), the seed (in
# config.yaml), where a resume restored from (the CLI says which run it resumes), that max_steps ended
# the fit, the GPUs visible, and a Tensor Core hint that no option of this program acts on.
LIGHTNING_CHATTER = re.compile(
    r"(\[rank: \d+\] )?("
    r"GPU available:|TPU available:|HPU available:|Using 16bit Automatic Mixed Precision|Using bfloat16 Automatic Mixed Precision|"
    r"Seed set to |Restoring states from the checkpoint path at |Restored all states from the checkpoint at |"
    r"`Trainer\.fit` stopped: `max_steps=|LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES:|You are using a CUDA device .* that has Tensor Cores)"
)
# Where Lightning logs them (rank_zero_info's loggers, the seed's and the CUDA accelerator's).
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.accelerators.cuda",
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


class LightningChatter(logging.Filter):
    """Drops ``LIGHTNING_CHATTER``; this program's own lines and every warning pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LIGHTNING_CHATTER.match(record.getMessage()) is None


@contextlib.contextmanager
def without_lightning_chatter() -> Iterator[None]:
    """Inside the block, Lightning's lines about itself (``LIGHTNING_CHATTER``) are not shown: a run's
    output is its progress bar, this program's lines and real warnings. The CLI's way unless ``--verbose``;
    one run's filter, added and removed by it, so a process running many (a batch, the page) can mix."""
    chatter = LightningChatter()
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    for logger in loggers:
        logger.addFilter(chatter)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(chatter)


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
