"""``HoldRunLock``: a fit holds its directory's ``run.lock`` (``outputs/run_lock.py``) to its end, however
it ends (finished, stopped by a signal, failed)."""

from __future__ import annotations

import lightning.pytorch as pl

from nst_lightning.outputs.run_lock import RunLock


class HoldRunLock(pl.Callback):
    """Takes ``lock`` at the Trainer's ``setup`` (a no-op when the CLI has taken it already, as it does
    before it checks the run directory) and gives it back at ``teardown`` or on an exception."""

    def __init__(self, lock: RunLock) -> None:
        self.lock = lock

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            self.lock.acquire()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.lock.release()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.lock.release()
