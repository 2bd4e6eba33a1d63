"""Continuing from a checkpoint: whether it may continue this run (a new run from its image is
``inputs/checkpoints.load_start_image``).

A checkpoint holds the image and the optimizer state of one optimisation problem. Resuming it with
other inputs, another stage schedule or the other optimizer would silently optimise a different
problem from a state made for this one, so ``check_resume`` refuses, naming the option and the way
on: a *new* run that starts from the checkpoint's image (``load_start_image``).

The same checks run inside ``Trainer.fit(ckpt_path=...)`` (the datamodule's ``load_state_dict``,
``CoarseToFine.on_load_checkpoint``, ``StyleTransfer.on_load_checkpoint``); the CLI runs them once
more before the Trainer writes anything, so a refused resume leaves the run directory untouched.
"""

from __future__ import annotations

from typing import Any, Mapping

from nst_lightning.model.checkpoint_checks import check_checkpoint
from nst_lightning.model.options import MAY_CHANGE_ON_RESUME
from nst_lightning.utilities.errors import param


def check_resume(checkpoint: Mapping[str, Any], model: Any, datamodule: Any, name: str = "the checkpoint", trainer: Any = None) -> None:
    """Refuse to resume from ``checkpoint`` if it was made for other inputs (see
    ``StyleTransferData.check_resume``), another stage schedule or the other optimizer, or if
    anything in it is not what this run can continue from (``model/checkpoint_checks.py``; with
    ``trainer``, its loop and callback states too), so that the Trainer never sees a bad one."""
    check_checkpoint(checkpoint, model, datamodule, trainer, name)


def changed_options(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """One line per model option whose value ``asked`` differs from the checkpoint's ``saved``
    hyperparameters, which a resume uses (LightningCLI restores them over the config and flags),
    except those a resume may change (``model.options.MAY_CHANGE_ON_RESUME``: how a step is
    computed, not what is optimised)."""
    return [
        f"{param('model.' + key)} is {_spelled(asked[key])} here but the checkpoint was made with {_spelled(saved[key])}; "
        f"the resumed run keeps {_spelled(saved[key])}"
        for key in sorted(set(saved) & set(asked))
        if not key.startswith("_") and key not in MAY_CHANGE_ON_RESUME and _comparable(saved[key]) != _comparable(asked[key])
    ]


def _spelled(value: Any) -> str:
    """A value as a flag gives it (``null``, ``true``), so that the line's fix can be typed as shown."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _comparable(value: Any) -> Any:
    """Lists and tuples alike (YAML gives lists, defaults may be tuples); ints and floats alike."""
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
