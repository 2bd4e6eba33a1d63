"""The result file: ``SaveGeneratedImage`` (``--result.*``) writes ``generated.png`` at the end, on a
signal, or after a divergence the last image whose loss was finite: 8 or 16 bits, tagged sRGB or
converted to the photo's profile, with the run's configuration embedded (``outputs/results.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import lightning.pytorch as pl
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_warn

from nst_lightning.callbacks.checkpoint import is_graceful_stop
from nst_lightning.callbacks.divergence import DivergenceGuard, image_is_finite
from nst_lightning.inputs.data import InputData
from nst_lightning.outputs.results import (
    SIXTEEN_BIT_FORMATS,
    embedded_config,
    embedded_profile,
    image_format,
    profile_problem,
    save_image,
)
from nst_lightning.utilities.errors import NonFiniteLossError, UserError, param
from nst_lightning.utilities.files import remove_stale_temporaries


def find_callback(trainer: pl.Trainer, kind: type) -> Optional[Any]:
    return next((callback for callback in trainer.callbacks if isinstance(callback, kind)), None)


class SaveGeneratedImage(pl.Callback):
    """Writes the image into the run's log directory when training ends or is stopped by a signal;
    when the loss became non-finite, writes the last image whose loss was finite instead. The file
    carries its colour profile and the run's configuration (``outputs/results.py``)."""

    def __init__(
        self,
        filename: str = "generated.png",
        bit_depth: Literal[8, 16] = 8,
        color_profile: Literal["srgb", "photo"] = "srgb",
        embed_config: bool = True,
    ) -> None:
        """
        Args:
            filename: Name of the result image inside the run's log directory (``trainer.log_dir``);
                the extension picks the format (``.png``, ``.tif``, ``.jpg``, ...).
            bit_depth: Bits per channel: 8, or 16 (PNG or TIFF) to keep the gradations of the fp32
                optimisation (no banding in skies at print sizes), at several times the file size.
            color_profile: ``srgb`` (the default: the space the optimisation works in, shown right by
                every viewer and browser) tags the result with sRGB; ``photo`` converts it to the photo's
                own embedded RGB profile (Display P3, Adobe RGB...) and tags it with that, 8 bits only.
                A photo without a profile is sRGB.
            embed_config: Embed the run's configuration (``config.yaml``: option values and input paths)
                in the result, so that ``fit --config RESULT`` reruns it; false leaves it out (e.g. for
                results shared where the paths of your files should not go).
        """
        if bit_depth == 16 and image_format(filename) not in SIXTEEN_BIT_FORMATS:
            raise UserError(
                f"{param('result.bit_depth')} 16 writes PNG or TIFF, not {image_format(filename)}: name the result "
                f".png or .tif with {param('result.filename')} (not {filename}), or keep {param('result.bit_depth')} 8"
            )
        if bit_depth == 16 and color_profile == "photo":
            raise UserError(
                f"{param('result.color_profile')} photo converts 8-bit results only (Pillow's colour management is "
                f"8-bit): with {param('result.bit_depth')} 16 keep {param('result.color_profile')} srgb (the result is "
                "tagged sRGB; editors and print drivers convert it to any profile at 16 bits)"
            )
        self.filename = filename
        self.bit_depth = int(bit_depth)
        self.color_profile = color_profile
        self.embed_config = embed_config
        self.paths: list[Path] = []  # the image(s) written: one per photo
        self.step: Optional[int] = None  # the step of the image written
        self.config: Optional[str] = None  # the YAML embedded, read from LightningCLI's SaveConfigCallback

    @property
    def path(self) -> Optional[Path]:
        """The (first) image written, if any."""
        return self.paths[0] if self.paths else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and trainer.log_dir is not None:
            remove_stale_temporaries(trainer.log_dir)  # left by a run killed while writing the image
        # The YAML of config.yaml, as SaveConfigCallback writes it (its save_config docstring shows this
        # dump "for proper reproducibility"); None outside LightningCLI (stylize) or when not wanted.
        saver = find_callback(trainer, SaveConfigCallback) if self.embed_config else None
        self.config = embedded_config(saver.parser.dump(saver.config, skip_none=False)) if saver is not None else None

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
            names = [self.filename] if image.shape[0] == 1 else [member_filename(self.filename, k) for k in range(image.shape[0])]
            # Photos optimised together: one file each, generated_0.png, generated_1.png...
            self.paths = [
                save_image(image[k : k + 1], os.path.join(directory, name), self.bit_depth, self._profile(trainer, k), self.config)
                for k, name in enumerate(names)
            ]
            self.step = step

    def _profile(self, trainer: pl.Trainer, k: int) -> Optional[bytes]:
        """The ICC profile to convert the k-th result to (``None``: sRGB): with ``photo``, the k-th
        photo's own, when it has a usable one."""
        datamodule = getattr(trainer, "datamodule", None)
        if self.color_profile != "photo" or not isinstance(datamodule, InputData):
            return None
        source = datamodule.contents[k]
        icc = embedded_profile(datamodule.source_bytes(source, param("data.content")))
        if icc is None:
            return None  # an untagged photo is sRGB by convention (the web's, Exif's)
        problem = profile_problem(icc)
        if problem is not None:
            rank_zero_warn(f"the ICC profile of {source} {problem}; the result is sRGB (--result.color_profile photo)")
            return None
        return icc


def member_filename(filename: str, k: int) -> str:
    """The result file of the k-th of several photos optimised together: ``generated_0.png``..."""
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem}_{k}.{suffix}" if dot else f"{filename}_{k}"
