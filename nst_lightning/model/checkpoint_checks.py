"""Whether a checkpoint can continue this run: everything a resume reads from it, checked against
what the run is, before anything is allocated from it or written.

``check_checkpoint`` is the one check. The image must be float32 ``[K, 3, H, W]`` with the run's K
photos and the size of the stage ``CoarseToFine`` will continue (so the memory estimate made from
the inputs' headers holds for a resumed image too); the optimizer state must be one optimizer's
over the image alone, Adam's moments of the image's shape, L-BFGS's history of its length; the loop,
callback and precision states must have the layout the Trainer's own have (Lightning indexes them
without a check, and garbage there would end in a traceback after the run's files were written).
The CLI runs it before the Trainer writes anything (``run/resume.Resume.check``), and
``StyleTransfer.on_load_checkpoint`` runs it for every other way in (``Trainer.fit(ckpt_path=...)``,
``load_from_checkpoint``) through ``prepare_load``, which also lets a checkpoint saved with
``save_weights_only`` resume: with a warning, its optimizer starts afresh.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.migration import migrate_checkpoint
from torch import Tensor, nn

from nst_lightning.inputs.checkpoints import (
    CheckpointProblem,
    check_count,
    check_image,
    check_number,
    check_structure,
    check_tensor,
    check_type,
    kind,
    not_ours,
)
from nst_lightning.inputs.data import InputData
from nst_lightning.model.options import check_same_optimizer
from nst_lightning.model.schedules import check_schedule_state, schedule_state
from nst_lightning.scale.iterate_average import IterateAverage
from nst_lightning.scale.multiscale import check_same_schedule, stage_shape
from nst_lightning.utilities.errors import new_run_hint

OPTIMIZER_STATE = {"adam": "Adam's moments", "lbfgs": "L-BFGS's history"}
ADAM_KEYS = {"step", "exp_avg", "exp_avg_sq"}  # and max_exp_avg_sq with amsgrad
LBFGS_KEYS = {"d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss"}  # after its first step


def check_checkpoint(checkpoint: Any, module: Any, datamodule: Optional[InputData] = None, trainer: Any = None, name: str = "the checkpoint") -> None:
    """Refuse, in one ``UserError``, a checkpoint this run cannot continue from: see the module's
    docstring. ``datamodule`` and ``trainer`` (None: not known) give the image's expected size and
    the layouts of the loop and callback states."""
    image_checked = False
    try:
        check_type(checkpoint, dict, "it")
        check_structure(checkpoint)
        if datamodule is not None:  # other inputs: its own UserError
            state = check_type(checkpoint.get(type(datamodule).__qualname__, {}), dict, f"its {type(datamodule).__qualname__}")
            datamodule.check_same_inputs(check_type(state.get("fingerprint"), (dict, type(None)), "its fingerprint"), name)
        check_same_schedule(checkpoint, module.optim.stages, name)
        check_same_optimizer(checkpoint, module.optim, name)
        image = _check_state_dict(checkpoint, module, datamodule)
        image_checked = True
        if "optimizer_states" in checkpoint:
            _check_optimizer(checkpoint["optimizer_states"], module, image)
            check_schedule_state(checkpoint, module.optim.scheduled, name)
            if module.optim.scheduled:  # LambdaLR reads its keys unchecked; without a schedule none is restored
                fresh = schedule_state(module.optim.make_optimizer(nn.Parameter(torch.zeros(1))), module.optim, 1, 0)
                same_layout(checkpoint.get("lr_schedulers"), [fresh], "its lr_schedulers")
        if trainer is not None:
            _check_trainer_states(checkpoint, trainer)
    except CheckpointProblem as problem:
        hint = f"resume from a .ckpt this program wrote for this run, {new_run_hint(name)}" if image_checked else ""
        raise not_ours(name, problem, hint=hint) from None


def prepare_load(module: Any, checkpoint: dict[str, Any]) -> None:
    """``StyleTransfer.on_load_checkpoint``: check the checkpoint whole, complete one saved with
    ``save_weights_only``, and give the parameter (and the average) the saved shape (that of the
    checkpoint's stage) before the state dict and the optimizer state are loaded into them."""
    try:
        trainer = module.trainer
    except RuntimeError:  # StyleTransfer.load_from_checkpoint(path): no Trainer
        trainer = None
    datamodule = trainer.datamodule if isinstance(getattr(trainer, "datamodule", None), InputData) else None
    check_checkpoint(checkpoint, module, datamodule, trainer, str(getattr(trainer, "ckpt_path", None) or "the file"))
    shape = checkpoint["state_dict"]["image"].shape
    if "optimizer_states" not in checkpoint and trainer is not None:
        rank_zero_warn(
            "this checkpoint holds no optimizer state (it was saved with save_weights_only): the run goes on from "
            f"its image and step, but {OPTIMIZER_STATE[module.optim.optimizer]} start afresh"
        )
        fresh = module.optim.make_optimizer(nn.Parameter(torch.zeros(shape)))
        checkpoint["optimizer_states"], checkpoint["lr_schedulers"] = [fresh.state_dict()], []
        if module.optim.scheduled:  # the schedule goes on from the saved step, not from its start
            step = check_count(checkpoint.get("global_step", 0), "its global_step")
            checkpoint["lr_schedulers"] = [schedule_state(fresh, module.optim, trainer.max_steps, step)]
        # Callbacks are restored only when the checkpoint has their states, and the stage only then.
        checkpoint.setdefault("callbacks", {})
        if datamodule is not None and "nst_stage" not in checkpoint:
            checkpoint["nst_stage"] = _stage_of(shape, module.optim.stages, datamodule)
    # NCHW whatever the saved strides (L-BFGS flattens the parameter and its gradient), on the device
    # the parameter is on (the Trainer restores after moving the module), whatever the saved one.
    device = module.image.device if module.image is not None else torch.device("cpu")
    if module.image is None:
        module.image = nn.Parameter(torch.empty(shape))
    module.image.data = torch.empty(shape, device=device)
    if "average.value" in checkpoint["state_dict"]:
        module.average = module.average or IterateAverage(module.image, module.optim.ema_decay or 0.99)
        module.average.value = torch.empty(shape, device=device)


def _stage_of(shape: torch.Size, stages: list[int], datamodule: InputData) -> int:
    """The coarse-to-fine stage whose size the image has (0 when none has)."""
    sizes = [stage_shape(datamodule, stages, index) for index in range(len(stages) + 1)]
    return sizes.index(tuple(shape[-2:])) if tuple(shape[-2:]) in sizes else 0


def _check_state_dict(checkpoint: dict[str, Any], module: Any, datamodule: Optional[InputData]) -> Tensor:
    """The image (its shape that of the run and its stage), the average, and nothing else but VGG19's
    own weights (which old checkpoints held)."""
    state, stages = checkpoint["state_dict"], module.optim.stages
    count = size = None
    if datamodule is not None:
        count, stage = len(datamodule.contents), checkpoint.get("nst_stage")
        if stage is not None and stage > len(stages):
            raise CheckpointProblem(f"its nst_stage is {stage}, past the last of the {len(stages) + 1} stages")
        if stage is None:  # saved with save_weights_only (or before stages were saved): the image's
            image = state.get("image")
            stage = _stage_of(image.shape, stages, datamodule) if isinstance(image, Tensor) and image.dim() >= 2 else 0
        size = stage_shape(datamodule, stages, stage)
    if "image" not in state:  # the message the core gave before these checks (tests/model/test_module.py)
        raise CheckpointProblem("it holds no image")
    image = check_image(state["image"], "its image", count, size)
    if "average.value" in state:
        check_tensor(state["average.value"], "its average.value", shape=image.shape)
        count = check_number(check_tensor(state.get("average.count"), "its average.count", shape=()), "its average.count")
        if count < 0:
            raise CheckpointProblem(f"its average.count is {count:g}, below 0")
    vgg = {f"vgg.{key}": value for key, value in module.vgg.state_dict().items()}
    for key, value in state.items():
        if key in vgg:
            check_tensor(value, f"its state_dict[{key!r}]", shape=vgg[key].shape, dtype=vgg[key].dtype)
        elif key not in ("image", "average.value", "average.count"):
            raise CheckpointProblem(f"its state_dict holds {key!r}, which this program's model does not have")
    return image


def same_layout(saved: Any, reference: Any, what: str) -> None:
    """``saved`` has every key of ``reference`` and, at each, a value of its kind: how the Trainer's
    own state (a fresh one as ``reference``) checks a saved one before Lightning indexes it."""
    if isinstance(reference, dict):
        check_type(saved, dict, what)
        for key, value in reference.items():
            if key not in saved:
                raise CheckpointProblem(f"{what} has no {key!r}")
            same_layout(saved[key], value, f"{what}[{key!r}]")
    elif isinstance(reference, (list, tuple)):
        if len(check_type(saved, (list, tuple), what)) != len(reference):
            raise CheckpointProblem(f"{what} has {len(saved)} entries, not {len(reference)}")
        for index, (value, ref) in enumerate(zip(saved, reference)):
            same_layout(value, ref, f"{what}[{index}]")
    elif isinstance(reference, bool) or reference is None:
        check_type(saved, (bool, type(None)) if reference is None else bool, what)
    elif isinstance(reference, int):
        check_count(saved, what)
    elif isinstance(reference, float):
        check_number(saved, what)
    elif isinstance(reference, str):
        check_type(saved, str, what)
    elif isinstance(reference, Tensor):
        check_tensor(saved, what, shape=reference.shape, dtype=reference.dtype)


def _check_optimizer(states: list, module: Any, image: Tensor) -> None:
    """One optimizer's state, over one tensor (the image, or its pyramid's coordinates), with the hyperparameters a fresh one has."""
    if len(states) != 1:
        raise CheckpointProblem(f"it has {len(states)} optimizer states, not the one of this program's optimizer")
    saved, what = states[0], f"its {module.optim.optimizer} state"
    reference = module.optim.make_optimizer(nn.Parameter(torch.zeros(1))).state_dict()["param_groups"][0]
    groups = saved["param_groups"]
    if len(groups) != 1 or groups[0].get("params") != [0]:
        raise CheckpointProblem(f"{what} is not for one parameter, the image")
    for key, value in reference.items():
        if key not in groups[0]:
            raise CheckpointProblem(f"{what} has no {key!r}")
        if key != "params":
            same_layout(groups[0][key], value, f"{what}'s {key}")
    if not groups[0]["lr"] > 0:
        raise CheckpointProblem(f"{what}'s lr is {groups[0]['lr']}, not positive")
    if set(saved["state"]) - {0}:
        raise CheckpointProblem(f"{what} is for parameters {sorted(saved['state'], key=str)!r}, not the image alone")
    state = check_type(saved["state"].get(0, {}), dict, what)
    image = torch.empty(module.parameterisation.state_shape(image.shape), device="meta")  # what the state is of
    if module.optim.optimizer == "adam":
        _check_adam(state, image, what)
    else:
        _check_lbfgs(state, image, groups[0]["history_size"], what)


def _check_adam(state: dict, image: Tensor, what: str) -> None:
    if not state:
        return
    if missing := ADAM_KEYS - set(state):
        raise CheckpointProblem(f"{what} has no {', '.join(sorted(missing))}")
    if unknown := set(state) - ADAM_KEYS - {"max_exp_avg_sq"}:
        raise CheckpointProblem(f"{what} holds {', '.join(sorted(map(str, unknown)))}, which Adam does not")
    if check_number(check_tensor(state["step"], f"{what}'s step", shape=()), f"{what}'s step") < 0:
        raise CheckpointProblem(f"{what}'s step is negative")
    for key in sorted(set(state) - {"step"}):
        # The extremes only (NaN propagates into them): no temporary of the image's size.
        low, high = torch.aminmax(check_tensor(state[key], f"{what}'s {key}", shape=image.shape))
        if not (torch.isfinite(low) and torch.isfinite(high)) or key != "exp_avg" and low < 0:
            raise CheckpointProblem(f"{what}'s {key} holds {'negative or ' if key != 'exp_avg' else ''}non-finite values")


def _check_lbfgs(state: dict, image: Tensor, history: int, what: str) -> None:
    if unknown := set(state) - LBFGS_KEYS - {"func_evals", "n_iter", "al"}:
        raise CheckpointProblem(f"{what} holds {', '.join(sorted(map(str, unknown)))}, which L-BFGS does not")
    for key in ("func_evals", "n_iter"):
        if key in state:
            check_count(state[key], f"{what}'s {key}")
    if not state.get("n_iter") and not set(state) & LBFGS_KEYS:
        return  # before its first step
    if missing := LBFGS_KEYS - set(state):
        raise CheckpointProblem(f"{what} has no {', '.join(sorted(missing))}")
    flat = (image.numel(),)
    for key in ("d", "prev_flat_grad"):
        check_tensor(state[key], f"{what}'s {key}", shape=flat)
    for key in ("t", "prev_loss", "H_diag"):
        check_number(state[key], f"{what}'s {key}")
    directions = check_type(state["old_dirs"], list, f"{what}'s old_dirs")
    if not len(directions) <= history:
        raise CheckpointProblem(f"{what} has {len(directions)} directions, more than its history of {history}")
    for key, shape in (("old_dirs", flat), ("old_stps", flat), ("ro", ())):
        values = check_type(state[key], list, f"{what}'s {key}")
        if len(values) != len(directions):
            raise CheckpointProblem(f"{what}'s {key} has {len(values)} entries, not {len(directions)}")
        for index, value in enumerate(values):
            check_tensor(value, f"{what}'s {key}[{index}]", shape=shape)
    if "al" in state:
        al = check_type(state["al"], list, f"{what}'s al")
        if len(al) < len(directions) or any(a is not None and not isinstance(a, Tensor) for a in al):
            raise CheckpointProblem(f"{what}'s al is not a list of {history} scalars")


def _check_trainer_states(checkpoint: dict[str, Any], trainer: Any) -> None:
    """The loop, callback and precision states, against the Trainer's own."""
    try:  # a checkpoint of an older Lightning: its states upgraded, as the Trainer will on loading it
        if "pytorch-lightning_version" in checkpoint:
            migrate_checkpoint(checkpoint)
    except Exception as err:
        raise CheckpointProblem(f"its Lightning state could not be upgraded ({type(err).__name__})") from None
    loops = checkpoint.get("loops")
    if loops is not None and "fit_loop" in loops:
        same_layout(loops["fit_loop"], trainer.fit_loop.state_dict(), "its loops['fit_loop']")
    elif loops is not None:
        raise CheckpointProblem("its loops have no 'fit_loop'")
    callbacks = checkpoint.get("callbacks") or {}
    for callback in trainer.callbacks:
        state = callbacks.get(callback.state_key)
        if state is None:
            continue
        what = f"its state of the {type(callback).__name__} callback"
        if isinstance(callback, ModelCheckpoint):
            _check_model_checkpoint(check_type(state, dict, what), what)
        elif callback.state_dict():
            same_layout(state, callback.state_dict(), what)
    precision = type(trainer.precision_plugin).__qualname__
    if precision in checkpoint:
        same_layout(checkpoint[precision], trainer.precision_plugin.state_dict(), f"its {precision} state")


# What ModelCheckpoint.load_state_dict reads (the first two without a default).
MODEL_CHECKPOINT_STATE = {
    "best_model_path": (str,),
    "best_model_score": (Tensor, float, int, type(None)),
    "current_score": (Tensor, float, int, type(None)),
    "kth_value": (Tensor, float, int),
    "monitor": (str, type(None)),
    "dirpath": (str, type(None)),
    "kth_best_model_path": (str,),
    "last_model_path": (str,),
    "best_k_models": (dict,),
}


def _check_model_checkpoint(state: dict, what: str) -> None:
    for key, types in MODEL_CHECKPOINT_STATE.items():
        if key not in state:
            if key in ("best_model_path", "best_model_score"):
                raise CheckpointProblem(f"{what} has no {key!r}")
            continue
        value = check_type(state[key], types, f"{what}'s {key}")
        if isinstance(value, Tensor):
            check_tensor(value, f"{what}'s {key}", shape=(), dtype=None)
    for path, score in state.get("best_k_models", {}).items():
        check_type(path, str, f"a path in {what}'s best_k_models")
        if not isinstance(score, (Tensor, float, int)) or isinstance(score, bool):
            raise CheckpointProblem(f"{what}'s best_k_models[{path!r}] is {kind(score)}, not a score")

