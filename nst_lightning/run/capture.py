"""Where an in-process run's output goes (a batch job's, a video frame's): into its log and a copy the
command reads its one-line error from, not onto the terminal, which shows one progress bar over them.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Iterator, Optional


@contextlib.contextmanager
def output_to(path: Optional[Path], copy: io.StringIO) -> Iterator[None]:
    """A job's output (print, warnings, Lightning's log lines) into its ``batch.log`` (``path``) and
    ``copy``, not onto the batch's terminal, which shows one progress bar over the jobs. The log is a
    convenience: a disk too full for it does not stop the run (which then says what it could not write)."""
    handlers = [
        handler
        for name in ("lightning.pytorch", "lightning.fabric", "lightning")
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler)
    ]
    log_file = open(path, "a", encoding="utf-8", buffering=1) if path is not None else None  # line-buffered: a write fails here, not at close
    tee = _Tee(copy, log_file)
    streams = [handler.setStream(tee) for handler in handlers]
    try:
        with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
            yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)
        if log_file is not None:
            with contextlib.suppress(OSError):
                log_file.close()


class _Tee(io.TextIOBase):
    """Writes to ``copy`` and, until it fails (a full disk), to ``log``."""

    def __init__(self, copy: io.StringIO, log: Optional[Any]) -> None:
        self.copy, self.log = copy, log

    def write(self, text: str) -> int:
        self.copy.write(text)
        if self.log is not None:
            try:
                self.log.write(text)
            except OSError:
                self.log = None
        return len(text)

    def flush(self) -> None:
        if self.log is not None:
            try:
                self.log.flush()
            except OSError:
                self.log = None

    def isatty(self) -> bool:
        return False
