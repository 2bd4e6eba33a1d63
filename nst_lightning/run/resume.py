"""Resuming a run (``--ckpt_path``): ``Resume``, the one owner of what a resume may continue, as
Lightning's ``_CheckpointConnector`` is the Trainer's. The CLI holds one and calls it at each point of
its life: ``read_arguments`` once the command line is parsed, ``keep_step_options`` before the classes
are built, ``check`` before the Trainer writes anything, ``ckpt_path`` for ``trainer.fit``.

A checkpoint holds the image and the optimizer state of one optimisation problem. Resuming it with other
inputs, another stage schedule, the other optimizer or other loss options would silently optimise a
different problem from a state made for this one, so a resume is refused, in one line naming the option
and the way on: a *new* run that starts from the checkpoint's image (``--model.init image
--model.init_image CKPT``, ``inputs/checkpoints.load_start_image``). Every rule, and where it is checked:

- ``--ckpt_path``: ``best`` (which a new process never has), a directory, a FIFO or a device are refused
  unopened; the file is read with ``weights_only`` (whatever ``--weights_only`` says), every tensor
  checked before it is touched (``inputs/checkpoints.load_checkpoint_file``), before LightningCLI reads
  its hyperparameters.
- The run directory: a new run into one that holds a run is refused (resume it with ``--ckpt_path
  last``); ``--ckpt_path last`` where there is no checkpoint yet is a new run, said in one line.
- The checkpoint's structure (image, optimizer, schedule, loop and callback states), the size of its
  image for the stage it was saved at: ``model/checkpoint_checks.check_checkpoint``.
- The inputs it was made for: their fingerprint (``inputs/_fingerprint.py``), checked by the
  datamodule's ``check_same_inputs``.
- The stage schedule (``scale/multiscale.check_same_schedule``) and the optimizer
  (``model/options.check_same_optimizer``).
- Model options: those that only change how a step is computed (``model/options.MAY_CHANGE_ON_RESUME``:
  tiles, memory format, activation checkpointing...) take the value asked for; any other must be the
  checkpoint's, which LightningCLI restores over the config (``changed_options``).

The CLI runs these checks once before the Trainer writes anything, so a refused resume leaves the run
directory as it was. The same structure checks run again inside ``Trainer.fit(ckpt_path=...)`` for
every other way in (``stylize``, a plain Trainer, ``load_from_checkpoint``): ``StyleTransfer.
on_load_checkpoint``, the datamodule's ``load_state_dict`` and ``CoarseToFine.on_load_checkpoint``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Mapping, Optional

from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.inputs.checkpoints import load_checkpoint_file
from nst_lightning.model.checkpoint_checks import check_checkpoint
from nst_lightning.model.options import MAY_CHANGE_ON_RESUME
from nst_lightning.run._config_limits import file_kind
from nst_lightning.utilities.errors import UserError, new_run_hint, param

# Lightning's own checkpoint names, which this program neither reads nor checks.
LIGHTNING_OWN = ("best", "hpc")


class Resume:
    """What one run of the CLI resumes from, and the checks that it may."""

    def __init__(self) -> None:
        # The model options asked for (config files and flags), before LightningCLI replaces them with
        # the checkpoint's: a resume keeps those that change only how a step is computed, and refuses
        # any other that differs.
        self.asked: dict[str, Any] = {}
        # `--ckpt_path last` found no checkpoint: the fit starts fresh, and says so in one line.
        self.fresh_start = False

    def read_arguments(self, config: Any) -> None:
        """Right after parsing (``config``: the subcommand's): remember the model options asked for, and
        read ``--ckpt_path`` safely before LightningCLI does (it ``torch.load``s the file for its
        hyperparameters next, and a damaged file must end in one line, not a traceback)."""
        self.asked = config["model"].as_dict()
        ckpt_path = config.get("ckpt_path")
        check_checkpoint_path(ckpt_path)
        if ckpt_path and Path(ckpt_path).is_file():
            load_checkpoint_file(ckpt_path)

    def keep_step_options(self, config: Any) -> None:
        """Before the classes are built: on resume, the options that only change how a step is computed
        take the value asked for, not the checkpoint's (which LightningCLI has just put in ``config``)."""
        if config.get("ckpt_path"):
            for key in MAY_CHANGE_ON_RESUME:
                if key in self.asked:
                    config["model"][key] = self.asked[key]

    def check(self, ckpt_path: Optional[str], last: Optional[str], model: Any, datamodule: Any, trainer: Any, log_dir: Optional[str],
              said_where: bool = False) -> None:
        """Before the Trainer writes anything: the run directory against ``ckpt_path``, then the
        checkpoint to resume from (``last``: where ``--ckpt_path last`` looks), read and checked whole.
        ``said_where``: the line about where ``last`` looked was said already (``_versions.py``)."""
        if ckpt_path == "last" and (last is None or not os.path.exists(last)):
            # Not an error (a script may always pass it), but not silent either: one line, then on.
            if not said_where:
                where = os.path.normpath(os.path.dirname(last)) if last else "this run"
                rank_zero_info(f"--ckpt_path last: no checkpoint in {where} yet, so this is a new run")
            self.fresh_start = True
            return
        if ckpt_path is None and last is not None and os.path.exists(last):
            raise UserError(
                f"{os.path.normpath(log_dir or '.')} already holds a run ({last}); resume it with --ckpt_path last, "
                "or start a new one beside it with --trainer.logger.init_args.version null (a new version_N) or another NAME"
            )
        resume_from = last if ckpt_path == "last" else ckpt_path
        if resume_from is None or ckpt_path in LIGHTNING_OWN or str(ckpt_path).startswith("registry"):
            return
        checkpoint = load_checkpoint_file(resume_from)  # weights_only, whatever --weights_only says
        check_checkpoint(checkpoint, model, datamodule, trainer, str(resume_from))
        changes = changed_options(checkpoint.get("hyper_parameters", {}), self.asked)
        if changes:
            raise UserError(
                f"{resume_from} was made with other model options ({'; '.join(changes)}); resume with the checkpoint's "
                f"values, {new_run_hint(str(resume_from))} --trainer.logger.init_args.version NEW_NAME"
            )

    def ckpt_path(self, ckpt_path: Optional[str]) -> Optional[str]:
        """What ``trainer.fit`` is given: nothing for a fresh start (said in one line already; Lightning
        would add a warning of its own)."""
        return None if self.fresh_start else ckpt_path


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


def changed_options(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """One line per model option whose value ``asked`` differs from the checkpoint's ``saved``
    hyperparameters, which a resume uses (LightningCLI restores them over the config and flags),
    except those a resume may change (``MAY_CHANGE_ON_RESUME``: how a step is computed, not what is
    optimised). A different value asked for would be ignored, or (with ``--ckpt_path last``, which
    LightningCLI does not read) mixed with a state made for another problem."""
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
