"""Options that Lightning would answer with a traceback, a hang or a confusing failure, checked by the
CLI before anything is written: each becomes one line naming the option (``UserError``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl

from nst_lightning.run.callbacks.result import SaveGeneratedImage
from nst_lightning.run.config_limits import file_kind
from nst_lightning.run.run_lock import LOCK_NAME
from nst_lightning.utilities.errors import UserError, param

# numpy's seed range, which Lightning's seed_everything enforces with a traceback.
MAX_SEED = 2**32 - 1
# What a run writes into its directory itself: the result image must not be one of them.
RUN_OWN_NAMES = (LOCK_NAME, LOCK_NAME + ".takeover", "config.yaml", "hparams.yaml")


def check_seed(seed: Any) -> None:
    if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
        raise UserError(
            f"{param('seed_everything')} must be an integer from 0 to {MAX_SEED} (or true for a random seed, "
            f"false for none), not {seed}"
        )


def check_checkpoint_path(ckpt_path: Optional[str]) -> None:
    """``best`` (which a new process never has), and a path that is not a plain file, refused unopened:
    opening a FIFO waits for a writer forever, a device never ends."""
    if ckpt_path == "best":
        raise UserError(
            f"{param('ckpt_path')} best names the best checkpoint of an earlier fit in this same process, which a new "
            f"run does not have; give {param('ckpt_path')} last (the run's latest checkpoint) or a checkpoint file"
        )
    if not ckpt_path or ckpt_path in ("last", "hpc") or str(ckpt_path).startswith("registry"):
        return
    try:
        info = os.stat(ckpt_path)
    except (OSError, ValueError):
        return  # missing: said when it is read
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{param('ckpt_path')}: {ckpt_path} is a directory; give a .ckpt file")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{param('ckpt_path')}: {ckpt_path} is not a regular file ({file_kind(info.st_mode)}); give a .ckpt file")


def check_one_device(trainer: pl.Trainer, asked: Any) -> None:
    """One image is one optimisation problem: on several devices (or machines) each would compute the
    same steps, and the processes Lightning starts for them would only fight over the run directory."""
    if trainer.num_nodes > 1:
        raise UserError(
            f"{param('trainer.num_nodes')} {trainer.num_nodes}: a run is one image, one optimisation problem, on one "
            f"device; give {param('trainer.num_nodes')} 1 (for many images, use the batch command)"
        )
    if trainer.num_devices > 1:
        raise UserError(
            f"{param('trainer.devices')} {asked.devices}: a run optimises one image, a problem that does not split "
            f"across devices ({trainer.num_devices} would each compute the same steps); give {param('trainer.devices')} 1 "
            "(for many images at once, use the batch command)"
        )


def check_result_filename(trainer: pl.Trainer, checkpoint_dir: Optional[Path]) -> None:
    """``--result.filename`` now, rather than when the image is written at the end of training."""
    directory = Path(trainer.log_dir or ".")
    own = [directory / name for name in RUN_OWN_NAMES] + ([checkpoint_dir] if checkpoint_dir else [])
    for callback in trainer.callbacks:
        if not isinstance(callback, SaveGeneratedImage):
            continue
        name, option = callback.filename, param("result.filename")
        if not name.strip():
            raise UserError(f"{option} is empty; give a file name such as generated.png")
        target = directory / name
        if name.endswith(("/", os.sep)) or Path(name).name in ("", ".", "..") or target.is_dir():
            raise UserError(f"{option} {name} names a directory ({target}); give a file name such as generated.png")
        if any(os.path.normpath(target) == os.path.normpath(path) for path in own):
            raise UserError(f"{option} {name} is a name the run uses itself ({target}); give another, such as generated.png")
