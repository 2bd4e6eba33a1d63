"""The result file: ``SaveGeneratedImage`` (``--result.*``) writes ``generated.png`` at the end, on a
signal, or after a divergence the last image whose loss was finite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl

from nst_lightning.inputs.images import save_image
from nst_lightning.model.divergence import DivergenceGuard, image_is_finite
from nst_lightning.run.signals import is_graceful_stop
from nst_lightning.utilities.errors import NonFiniteLossError
from nst_lightning.utilities.files import remove_stale_temporaries


def find_callback(trainer: pl.Trainer, kind: type) -> Optional[Any]:
    return next((callback for callback in trainer.callbacks if isinstance(callback, kind)), None)


class SaveGeneratedImage(pl.Callback):
    """Writes the image into the run's log directory when training ends or is stopped by a signal;
    when the loss became non-finite, writes the last image whose loss was finite instead."""

    def __init__(self, filename: str = "generated.png") -> None:
        """
        Args:
            filename: Name of the result image inside the run's log directory (``trainer.log_dir``);
                the extension picks the format (``.png``, ``.jpg``, ...).
        """
        self.filename = filename
        self.paths: list[Path] = []  # the image(s) written: one per photo
        self.step: Optional[int] = None  # the step of the image written

    @property
    def path(self) -> Optional[Path]:
        """The (first) image written, if any."""
        return self.paths[0] if self.paths else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and trainer.log_dir is not None:
            remove_stale_temporaries(trainer.log_dir)  # left by a run killed while writing the image

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Never write a NaN image as the result (on_exception then writes the last good one).
        DivergenceGuard.check_image(trainer, pl_module)
        self._save(trainer, pl_module.result(), trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if getattr(pl_module, "image", None) is None:
            return  # stopped before there was an image
        graceful = is_graceful_stop(exception)
        guard = find_callback(trainer, DivergenceGuard)
        if graceful and image_is_finite(pl_module):
            self._save(trainer, pl_module.result(), trainer.global_step)
        elif (graceful or isinstance(exception, NonFiniteLossError)) and guard and guard.last_finite_image is not None:
            self._save(trainer, pl_module.result(guard.last_finite_image), guard.last_finite_step)

    def _save(self, trainer: pl.Trainer, image: Any, step: Optional[int]) -> None:
        if trainer.is_global_zero:
            directory = trainer.log_dir or "."
            if image.shape[0] == 1:
                self.paths = [save_image(image, os.path.join(directory, self.filename))]
            else:  # photos optimised together: one file each, generated_0.png, generated_1.png...
                self.paths = [save_image(image[k : k + 1], os.path.join(directory, member_filename(self.filename, k))) for k in range(image.shape[0])]
            self.step = step


def member_filename(filename: str, k: int) -> str:
    """The result file of the k-th of several photos optimised together: ``generated_0.png``..."""
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem}_{k}.{suffix}" if dot else f"{filename}_{k}"
