"""``stylize``: style transfer in one call, for notebooks and scripts.

    from nst_lightning import stylize
    image = stylize("photo.jpg", "painting.jpg", image_size=256, max_steps=200, style_weight=20)
    image.save("result.png")

It builds the same ``StyleTransfer``, ``StyleTransferData`` and ``Trainer`` the CLI does, and runs
them without logs or checkpoints unless ``log_dir`` asks for them. Its arguments are checked as the
CLI checks its options (``_api_arguments.py``), and the run as the CLI checks it before writing
anything: errors are ``UserError``s that name this function's arguments, and leave ``log_dir`` as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torch import Tensor

from nst_lightning.callbacks.checkpoint import CHECKPOINT_DEFAULTS, StepCheckpoint
from nst_lightning.callbacks.image_logger import ImageLogger
from nst_lightning.callbacks.result import SaveGeneratedImage
from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.model.module import StyleTransfer
from nst_lightning.model.preflight import check_inputs
from nst_lightning.outputs.results import to_pil
from nst_lightning.outputs.run_lock import LOCK_NAME, RunLock
from nst_lightning.run._api_arguments import Arguments, Seed
from nst_lightning.run._api_images import as_source, check_held, check_spill
from nst_lightning.run.quiet import EXPECTED_WARNINGS, NoAdvertisements
from nst_lightning.scale.memory import BUDGET_MARGIN, GB, available_bytes, gb, process_bytes
from nst_lightning.utilities.errors import RunInterrupted, UserError, param
from nst_lightning.utilities.signals import ctrl_c_kept, lightnings_ctrl_c, steps

ImageLike = Union[str, Path, Image.Image, Tensor]


def stylize(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    *,
    max_steps: PositiveInt = 500,
    seed: Optional[Seed] = 0,
    accelerator: str = "auto",
    precision: Union[str, int] = "32",
    log_dir: Optional[Union[str, os.PathLike]] = None,
    progress_bar: bool = True,
    **options: Any,
) -> Image.Image:
    """The photo ``content`` in the style of ``style``, as an RGB PIL image.

    Args:
        content: The photo: a file path, an http(s) URL, ``builtin:NAME``, a PIL image or an image
            tensor (``[3, H, W]``, ``[1, 3, H, W]`` or ``[H, W, 3]``; floats in [0, 1] or uint8).
        style: The painting, in any of those forms, or a list of them to blend.
        max_steps: Optimisation steps (loss evaluations).
        seed: Seeds the noise of ``init="noise"`` (the caller's own random state is left as it was);
            None: unseeded.
        accelerator: Lightning's ``accelerator``: ``auto``, ``cpu``, ``gpu``...
        precision: Lightning's ``precision``: ``32``, ``bf16-mixed``, ``16-mixed``.
        log_dir: If given, the run is also kept there as the CLI keeps it: TensorBoard events,
            checkpoints (``checkpoints/last.ckpt``) and ``generated.png``. It must be new or empty: an
            earlier run there is refused, never continued or overwritten.
        progress_bar: Show Lightning's progress bar.
        **options: Any option of ``StyleTransfer`` (``style_weight``, ``optimizer``, ``lr``,
            ``preserve_colors``, ``stage_steps``, ...) or ``StyleTransferData`` (``image_size``,
            ``style_weights``, ``style_scale``), by the names ``--model.*``/``--data.*`` use.

    Ctrl-C raises ``KeyboardInterrupt``, as any Python call does, saying what was kept: with ``log_dir``
    the run stops after its current step and saves its checkpoint there (a second Ctrl-C stops at once).
    """
    run = dict(
        max_steps=max_steps, seed=seed, accelerator=accelerator, precision=precision, log_dir=log_dir, progress_bar=progress_bar
    )
    checked = Arguments(stylize).check(run, options)
    run = checked["run"]
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    names = [param("data.style") + (f"[{k}]" if len(styles) > 1 else "") for k in range(len(styles))]
    # The caller's random state is left as it was; within, seeded as the CLI's seed_everything seeds
    # a run (before the model is built), so the same options give the CLI's result.
    with tempfile.TemporaryDirectory(prefix="nst_stylize_") as inputs, torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        if run["seed"] is not None:
            torch.manual_seed(run["seed"])
        for message in EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        NoAdvertisements.install()  # before the Trainer, which prints one
        trainer = _trainer(**run)
        model = StyleTransfer(**checked["model"])
        # What the inputs cost, checked before it is spent (as the CLI's preflight): each in-memory
        # image from its shape, before it is copied to a PNG; below, every painting from its header.
        limit, where = _memory_limit(model, trainer)
        for image, name in [(content, param("data.content")), *zip(styles, names)]:
            check_spill(image, name, limit, where)
        data = StyleTransferData(
            content=as_source(content, Path(inputs) / "content.png", param("data.content")),
            style=[as_source(s, Path(inputs) / f"style{k}.png", name) for k, (s, name) in enumerate(zip(styles, names))],
            **checked["data"],
        )
        check_held(data, limit, where)
        _check_run(model, data, trainer, run["max_steps"], str(run["precision"] or "32"))  # None: the Trainer's default
        lock = None if run["log_dir"] is None else _hold(Path(run["log_dir"]))
        try:
            with ctrl_c_kept():
                trainer.fit(model, datamodule=data)
        except RunInterrupted as stop:  # at a step boundary, with log_dir's checkpoint saved
            if stop.signum != signal.SIGINT:
                raise
            kept = f"; {log_dir} holds its checkpoint" if stop.saved and log_dir is not None else "; nothing was saved"
            raise KeyboardInterrupt(f"stopped after {steps(stop.step or 0)}{kept}") from None
        except SystemExit as stop:
            # Lightning answers a Ctrl-C in its Trainer with sys.exit(1): a caller (a notebook's cell)
            # gets the KeyboardInterrupt it pressed, as from any Python call.
            if lightnings_ctrl_c(stop):
                raise KeyboardInterrupt("stopped; nothing was saved") from None
            raise
        finally:
            if lock is not None:
                lock.release()
        return to_pil(model.result())


def _memory_limit(model: StyleTransfer, trainer: pl.Trainer) -> tuple[Optional[float], str]:
    """The bytes the inputs may take where they are decoded (the CPU), and how a message names that
    limit: the memory available there (unless ``check_memory`` is off), and on a CPU run what
    ``max_memory_gb`` leaves of its budget, counted as ``scale/budget.py`` counts it."""
    cpu, compute = torch.device("cpu"), model.compute
    limits = []
    available = available_bytes(cpu) if compute.check_memory else None
    if available is not None:
        limits.append((available, f"the {gb(available)} available"))
    if compute.max_memory_gb is not None and trainer.strategy.root_device.type == "cpu":
        left = BUDGET_MARGIN * compute.max_memory_gb * GB - process_bytes(cpu)
        limits.append((left, f"the {gb(max(left, 0.0))} that {param('model.max_memory_gb')} {compute.max_memory_gb:g} leaves"))
    return min(limits, default=(None, ""))


def _trainer(
    max_steps: int, accelerator: str, precision: Any, log_dir: Optional[str], progress_bar: bool, **_: Any
) -> pl.Trainer:
    """The CLI's Trainer for this run (nothing is written until ``fit``)."""
    keep = log_dir is not None
    try:
        return pl.Trainer(
            max_steps=max_steps,
            accelerator=accelerator,
            devices=1,
            precision=precision,
            logger=TensorBoardLogger(log_dir, name="", version="", default_hp_metric=False) if keep else False,
            callbacks=[StepCheckpoint(**CHECKPOINT_DEFAULTS), ImageLogger(), SaveGeneratedImage()] if keep else [],
            enable_checkpointing=keep,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            log_every_n_steps=max(1, min(10, max_steps)),
        )
    except ImportError as err:  # a precision whose package is missing (transformer-engine)
        raise UserError(f"{param('trainer.precision')} {precision!r} cannot run here: {err}") from None
    except (ValueError, MisconfigurationException) as err:  # an unknown or unavailable accelerator
        raise UserError(
            f"{param('trainer.accelerator')} {accelerator!r} cannot run here: {str(err).strip()} "
            f"(give {param('trainer.accelerator')}='auto' to use what this machine has)"
        ) from None


def _check_run(model: StyleTransfer, data: StyleTransferData, trainer: pl.Trainer, max_steps: int, precision: str) -> None:
    """The CLI's checks before anything is written (``StyleTransferCLI.before_fit``): the inputs, the
    stage schedule, the memory, and the precision against the optimizer (the precision asked for, as
    the CLI: on a CPU Lightning quietly swaps 16-mixed for bf16-mixed)."""
    model.take_plan(check_inputs(model, data, max_steps, trainer.strategy.root_device, precision))  # setup checks nothing twice
    if model.hparams.optimizer == "lbfgs" and precision in ("16-mixed", "16", "16-true"):
        raise UserError(
            f"{param('model.optimizer')} lbfgs cannot run with {param('trainer.precision')} {precision} (its GradScaler "
            f"does not support L-BFGS); use bf16-mixed, 32, or {param('model.optimizer')} adam"
        )


def _hold(log_dir: Path) -> RunLock:
    """The run lock of ``log_dir`` (one writer, as with the CLI), once it is known to hold no earlier run.

    An earlier run there is refused, not resumed as the CLI's ``--ckpt_path last`` would: a call's result
    depends on its arguments only, so re-running a notebook cell never quietly continues, nor overwrites,
    what another call left (a resume would also keep that call's options and steps, not these)."""
    if log_dir.exists() and not log_dir.is_dir():
        raise UserError(f"{param('run.log_dir')} {log_dir} is a file; give a directory, new or empty")
    try:
        lock = RunLock(log_dir).acquire()
    except OSError as err:
        raise UserError(
            f"{param('run.log_dir')} {log_dir} cannot be written ({err.strerror}); give a writable directory"
        ) from None
    try:
        held = sorted(entry.name for entry in log_dir.iterdir() if not entry.name.startswith(LOCK_NAME))
        last = log_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            raise UserError(
                f"{param('run.log_dir')} {log_dir} already holds a run ({last}); give another {param('run.log_dir')}, "
                "or delete this one to start over"
            )
        if held:
            raise UserError(
                f"{param('run.log_dir')} {log_dir} is not empty (it holds {', '.join(held[:3])}{', ...' if len(held) > 3 else ''}); "
                f"give a new or empty {param('run.log_dir')}, so that nothing there is overwritten"
            )
    except BaseException:
        lock.release()
        if lock.created_directory:
            shutil.rmtree(lock.directory, ignore_errors=True)  # it held nothing but the lock
        raise
    return lock
