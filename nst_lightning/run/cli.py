"""``python -m nst_lightning fit``: LightningCLI (as ``cli_base.BaseCLI`` runs it) with the project's
callbacks and its error handling.

Options come from the typed ``__init__`` arguments of ``StyleTransfer`` (``--model.*``),
``StyleTransferData`` (``--data.*``), the Trainer (``--trainer.*``) and the callbacks below
(``--checkpoint.*``, ``--image_logger.*``, ``--result.*``); ``--print_config`` shows them all.

Exit codes: 0 done; 2 a ``UserError`` (one line naming the option to change); 128 + N stopped by
signal N (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), after saving a checkpoint and the image when training
had started. Never a traceback for any of these.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.callbacks.checkpoint import CHECKPOINT_DEFAULTS, StepCheckpoint
from nst_lightning.callbacks.image_logger import ImageLogger
from nst_lightning.callbacks.result import SaveGeneratedImage
from nst_lightning.callbacks.run_lock import HoldRunLock
from nst_lightning.inputs.checkpoints import load_checkpoint_file
from nst_lightning.model.module import StyleTransfer
from nst_lightning.model.options import MAY_CHANGE_ON_RESUME
from nst_lightning.model.preflight import check_inputs
from nst_lightning.outputs.run_lock import RunLock
from nst_lightning.run.cli_base import BaseCLI
from nst_lightning.run.config_limits import check_arguments
from nst_lightning.run.option_checks import check_checkpoint_path, check_one_device, check_result_filename, check_seed
from nst_lightning.run.precision import PrecisionPolicy, resolve_precision
from nst_lightning.run.resume import changed_options, check_resume
from nst_lightning.utilities.errors import NonFiniteLossError, RunInterrupted, UserError, new_run_hint
from nst_lightning.utilities.files import DISK_ERRNOS, WriteFailed, describe_write_failure
from nst_lightning.utilities.signals import steps

# Lightning's own integer options that our typed ones do not cover (-1 = all, for save_top_k).
INT_MINIMUMS = {
    "checkpoint.every_n_train_steps": 0,
    "checkpoint.every_n_epochs": 0,
    "checkpoint.save_top_k": -1,
    "trainer.log_every_n_steps": 1,
}

TRAINER_DEFAULTS = {
    "max_steps": 500,
    # One image is one optimisation problem: several devices would only duplicate it.
    "devices": 1,
    "log_every_n_steps": 10,
    # A table of the module's parameters: the image and a frozen VGG19, the same for every run. --verbose shows it.
    "enable_model_summary": False,
    # Runs go into lightning_logs/NAME/version_N, a new N for each run (run/versions.py) unless a version
    # is named; a config names its runs with one line, `logger.init_args.name: NAME` under `trainer:`.
    # TensorBoard's placeholder hp_metric is noise here.
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "lightning_logs", "name": "nst", "version": None, "default_hp_metric": False},
    },
}


class StyleTransferCLI(BaseCLI):
    # `--ckpt_path last` found no checkpoint: the fit starts fresh (set by _check_existing_run).
    _fresh_start = False

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)  # --verbose
        # Always-on callbacks with their own config sections, so YAML can tune them without having
        # to restate the whole trainer.callbacks list.
        parser.add_lightning_class_args(StepCheckpoint, "checkpoint")
        parser.set_defaults({f"checkpoint.{name}": value for name, value in CHECKPOINT_DEFAULTS.items()})
        parser.add_lightning_class_args(ImageLogger, "image_logger")
        parser.add_lightning_class_args(SaveGeneratedImage, "result")
        parser.add_argument(
            "--precision_policy", type=PrecisionPolicy, default="as_set",
            help="as_set: --trainer.precision as given (fp32 unless set); native_bf16: where it is not given, "
            "bf16-mixed on a device that computes bf16 natively (a CPU with AVX512-BF16 or AMX, a GPU "
            "with bf16), fp32 elsewhere (run/precision.py)",
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then read ``--ckpt_path`` safely before LightningCLI does (it ``torch.load``s the file
        for its hyperparameters right after this, and a damaged file must end in one line, not a
        traceback); and remember the model options asked for, which LightningCLI then replaces with
        the checkpoint's. Before parsing, the configs and YAML values jsonargparse would read are
        bounded (``config_limits``); after, the options that Lightning would answer with a traceback
        or a hang are checked."""
        if args is None or isinstance(args, (list, tuple)):
            check_arguments(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        self.asked_model_options: dict[str, Any] = {}
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        self.asked_model_options = self.config[subcommand]["model"].as_dict()
        check_seed(self.config[subcommand].get("seed_everything"))
        ckpt_path = self.config[subcommand].get("ckpt_path")
        check_checkpoint_path(ckpt_path)
        if ckpt_path and Path(ckpt_path).is_file():
            load_checkpoint_file(ckpt_path)

    def before_instantiate_classes(self) -> None:
        """Integer options typed by Lightning as plain ``int``: checked here, right after parsing and
        before anything is built, so the error names the option as the user wrote it. And on resume,
        the options that only change how a step is computed take the value asked for, not the
        checkpoint's (which LightningCLI has just put in the config)."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        precision, said = resolve_precision(
            config.get("precision_policy"), config.get("trainer.precision"), config.get("trainer.accelerator")
        )
        config["trainer"]["precision"] = precision
        if said:
            rank_zero_info(said)
        if self.subcommand and config.get("ckpt_path"):
            for key in MAY_CHANGE_ON_RESUME:
                if key in self.asked_model_options:
                    config["model"][key] = self.asked_model_options[key]
        for key, minimum in INT_MINIMUMS.items():
            value = config.get(key)
            if value is not None and value < minimum:
                raise UserError(f"--{key} must be an integer >= {minimum}, not {value}")
        super().before_instantiate_classes()  # --verbose, and the run's version_N where none is named

    def before_fit(self) -> None:
        """Check everything a user can get wrong before the Trainer writes a single file."""
        if self.trainer.max_steps is None or self.trainer.max_steps < 1:
            raise UserError("--trainer.max_steps must be a positive number of optimisation steps")
        check_one_device(self.trainer, self.config[self.subcommand].trainer)
        last = self._last_checkpoint()
        check_result_filename(self.trainer, last, self.config[self.subcommand].get("ckpt_path"), self.datamodule)
        # The precision asked for, not the Trainer's: on CPU Lightning quietly swaps 16-mixed for
        # bf16-mixed, and a config that fails on a GPU should fail the same way everywhere.
        precision = str(self.config[self.subcommand].trainer.precision)
        check_inputs(self.model, self.datamodule, self.trainer.max_steps, self.trainer.strategy.root_device, precision)
        if self.model.hparams.optimizer == "lbfgs" and precision in ("16-mixed", "16", "16-true"):
            raise UserError(
                "--model.optimizer lbfgs cannot run with --trainer.precision 16-mixed (its GradScaler "
                "does not support L-BFGS); use bf16-mixed, 32, or --model.optimizer adam"
            )
        # One writer per run directory, from here (inputs are good: nothing is written for bad ones)
        # to the end; a second run aimed at it, or a resume of a run still going, stops here.
        if self.trainer.log_dir is not None:
            lock = RunLock(self.trainer.log_dir)
            try:
                lock.acquire()
            except WriteFailed as err:  # a full disk: the one line of any write, and nothing left behind
                lock.remove_created_directories()
                raise UserError(f"{err}; {self._last_good_checkpoint()}") from None
            except BaseException:
                lock.remove_created_directories()
                raise
            self.trainer.callbacks.insert(0, HoldRunLock(lock))  # released when the fit ends, however it ends
            try:
                self._check_existing_run()
            except BaseException:
                lock.release()
                lock.remove_created_directories()  # they held nothing but the lock
                raise
        else:
            self._check_existing_run()

    def _check_existing_run(self) -> None:
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        last = self._last_checkpoint()
        if ckpt_path == "last" and (last is None or not os.path.exists(last)):
            # Not an error (a script may always pass it), but not silent either: one line, then on.
            where = os.path.normpath(os.path.dirname(last)) if last else "this run"
            if self.numbered is None:  # else number_the_run has said where it looked
                rank_zero_info(f"--ckpt_path last: no checkpoint in {where} yet, so this is a new run")
            self._fresh_start = True
            return
        if ckpt_path is None and last is not None and os.path.exists(last):
            raise UserError(
                f"{os.path.normpath(self.trainer.log_dir)} already holds a run ({last}); resume it with --ckpt_path last, "
                "or start a new one beside it with --trainer.logger.init_args.version null (a new version_N) or another NAME"
            )
        # Read the checkpoint to resume from now, before the Trainer writes anything into the run: a
        # damaged or unsafe file, or one made for other inputs, is refused with the run left as it was.
        resume_from = last if ckpt_path == "last" else ckpt_path
        special = ckpt_path in ("best", "hpc") or str(ckpt_path).startswith("registry")  # Lightning's own
        if resume_from is not None and not special and (ckpt_path != "last" or os.path.exists(resume_from)):
            checkpoint = load_checkpoint_file(resume_from)  # weights_only, whatever --weights_only says
            check_resume(checkpoint, self.model, self.datamodule, name=str(resume_from), trainer=self.trainer)
            self._refuse_changed_options(checkpoint, str(resume_from))

    def _refuse_changed_options(self, checkpoint: dict[str, Any], name: str) -> None:
        """A resume continues the checkpoint's optimisation, with its options: LightningCLI restores
        them from an explicit ``--ckpt_path`` over the config (since 2.5.5), and the optimizer state
        keeps its learning rate either way. A different value asked for would be ignored, or (with
        ``--ckpt_path last``, which LightningCLI does not read) mixed with a state made for another
        problem; so it is refused, naming each option with both values."""
        changes = changed_options(checkpoint.get("hyper_parameters", {}), self.asked_model_options)
        if changes:
            raise UserError(
                f"{name} was made with other model options ({'; '.join(changes)}); resume with the checkpoint's "
                f"values, {new_run_hint(name)} --trainer.logger.init_args.version NEW_NAME"
            )

    def _last_checkpoint(self) -> Optional[str]:
        """Where ``--ckpt_path last`` looks: the checkpoint callback's directory."""
        checkpoint = self.trainer.checkpoint_callback
        if checkpoint is None or self.trainer.log_dir is None:
            return None
        directory = checkpoint.dirpath or os.path.join(self.trainer.log_dir, "checkpoints")
        return os.path.join(directory, f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}")

    def fit(self, model: StyleTransfer, **kwargs: Any) -> None:
        """``trainer.fit`` with safe loading by default and errors that say what was kept."""
        # Never execute code from a checkpoint, whatever --weights_only, the torch version or the
        # environment (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) say: this program's checkpoints need none.
        kwargs["weights_only"] = True
        if self._fresh_start:  # said so in one line already; Lightning would add a warning of its own
            kwargs["ckpt_path"] = None
        try:
            self.trainer.fit(model, **kwargs)
        except NonFiniteLossError as err:
            raise UserError(f"{err.message}; {self._kept_after_divergence()}") from None
        except OSError as err:  # a full disk, a quota, a failing filesystem: no traceback, what is kept
            if err.errno not in DISK_ERRNOS:
                raise
            if isinstance(err, WriteFailed):
                what = str(err)
            elif err.filename:
                what = describe_write_failure(err.filename, err)
            else:  # TensorBoard's event writer (a thread of its own) does not say which file
                directory = self.trainer.log_dir or "."
                what = describe_write_failure(directory, err, what=f"into {directory} (the TensorBoard event file)")
            raise UserError(f"{what}; {self._last_good_checkpoint()}") from None
        except RunInterrupted as err:
            err.kept = self._kept()
            raise
        except SIGTERMException:  # Lightning's own SIGTERM stop, outside StepCheckpoint's window
            raise self._interrupted(signal.SIGTERM, saved=True) from None
        except SystemExit as err:
            # Lightning answers a Ctrl-C outside training (while setting up) with sys.exit(1).
            if isinstance(err.__context__, KeyboardInterrupt):
                raise self._interrupted(signal.SIGINT, saved=False) from None
            raise

    def _interrupted(self, signum: int, saved: bool) -> RunInterrupted:
        err = RunInterrupted(signum, self.trainer.global_step, saved=saved)
        err.kept = self._kept()
        return err

    def _saved_image(self) -> Optional[SaveGeneratedImage]:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveGeneratedImage) and callback.path is not None:
                return callback
        return None

    def _last_good_checkpoint(self) -> str:
        last = self._last_checkpoint()
        if last is not None and os.path.exists(last):
            return f"the last good checkpoint, {last}, is intact: free some space and continue with --ckpt_path last"
        return "no checkpoint had been written yet: free some space and start again"

    def _kept(self) -> str:
        """What a stopped run leaves to go on from, for the one-line message."""
        kept = []
        image = self._saved_image()
        if image is not None:
            kept.append(f"{image.path} (the image after {steps(image.step)})")
        last = self._last_checkpoint()
        if last is not None and os.path.exists(last):
            kept.append(f"{last}; continue with --ckpt_path last")
        return "saved " + " and ".join(kept) if kept else "nothing was saved"

    def _kept_after_divergence(self) -> str:
        # Resuming would restore the learning rate with the optimizer state, and the last checkpoint
        # may already hold a diverging image: the way on is a new run from the last good image.
        image = self._saved_image()
        if image is None:
            return "no checkpoint or image was written after the divergence"
        return (
            f"the last image with a finite loss (after {steps(image.step)}) is in {image.path}: start a new run "
            f"from it with --model.init image --model.init_image {image.path} --trainer.logger.init_args.version NEW_NAME"
        )

    def after_fit(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveGeneratedImage) and callback.path is not None:
                for path in callback.paths:
                    print(f"generated image: {path}")
