"""Options that Lightning would answer with a traceback, a hang or a confusing failure, checked by the
CLI before anything is written: each becomes one line naming the option (``UserError``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import yaml

from nst_lightning.callbacks.result import SaveGeneratedImage, member_filename
from nst_lightning.outputs.run_lock import LOCK_NAME
from nst_lightning.run._config_limits import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, yaml_shape
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


def check_result_filename(
    trainer: pl.Trainer, last_checkpoint: Optional[str], ckpt_path: Optional[str] = None, datamodule: Any = None
) -> None:
    """``--result.filename`` now, rather than when the image is written at the end of training: a file
    name inside the run directory (after ``..`` and symlinks, one planted in the directory included),
    not one of the run's own names, and no existing file that this run did not write.

    Which file is this run's own: when the run resumes (``ckpt_path`` given, its checkpoint there),
    the result named by the run's own record, the ``config.yaml`` its earlier process wrote into the
    directory (LightningCLI's, written before training, so also by a run stopped before its end); its
    resume rewrites it, as it rewrites the checkpoints. Anything else already at the name (a photo, a
    run's result in a directory without its checkpoint, a file put there by hand) is never replaced."""
    directory = Path(trainer.log_dir or ".")
    photos = len(getattr(datamodule, "contents", None) or [None])  # several: one result file each
    checkpoint_dir = Path(last_checkpoint).parent if last_checkpoint else None
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
        files = _result_files(name, photos)
        for written in files:
            _check_inside(directory, written, name, option)
        resumes = _resumes(ckpt_path, last_checkpoint)
        if not resumes and last_checkpoint and os.path.exists(last_checkpoint):
            return  # a run's directory, not resumed: "already holds a run; resume it" is the line to say (cli.py)
        own_files = {os.path.normpath(f) for f in _result_files(_recorded_result(directory), photos)} if resumes else set()
        for written in files:
            if os.path.lexists(directory / written) and os.path.normpath(written) not in own_files:
                raise UserError(
                    f"{option} {name}: {os.path.normpath(directory / written)} already exists and this run did not write it; "
                    "give a name not yet taken (or move that file away)"
                )


def _check_inside(directory: Path, written: str, name: str, option: str) -> None:
    """The file ``written`` (``name``, or one photo's of it) resolves to a path inside ``directory``."""
    root = os.path.realpath(directory)
    real = os.path.realpath(directory / written)
    if real == root or os.path.commonpath([root, real]) != root:
        raise UserError(
            f"{option} {name} leads out of the run directory {os.path.normpath(directory)} (to {real}); the result is "
            "written inside its run: give a file name such as generated.png"
        )


def _result_files(name: Optional[str], photos: int) -> list[str]:
    """The files a run writes for ``name``: itself, or one per photo optimised together."""
    if not name:
        return []
    return [name] if photos <= 1 else [member_filename(name, k) for k in range(photos)]


def _resumes(ckpt_path: Optional[str], last_checkpoint: Optional[str]) -> bool:
    if ckpt_path == "last":
        return bool(last_checkpoint) and os.path.isfile(last_checkpoint)
    return bool(ckpt_path) and os.path.isfile(str(ckpt_path))


def _recorded_result(directory: Path) -> Optional[str]:
    """``result.filename`` in the run's ``config.yaml`` (``None``: no readable record)."""
    path = directory / "config.yaml"
    try:
        if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
        shape = yaml_shape(text)  # bounded before it is built, as every config is
        if shape.error is not None or shape.depth > MAX_YAML_DEPTH or shape.nodes > MAX_YAML_NODES:
            return None
        record = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    result = record.get("result") if isinstance(record, dict) else None
    filename = result.get("filename") if isinstance(result, dict) else None
    return filename if isinstance(filename, str) else None
