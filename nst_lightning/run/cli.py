"""``python -m nst_lightning fit``: LightningCLI (as ``cli_base.BaseCLI`` runs it) with the project's
callbacks, its checks and its error handling.

A fit, in the order LightningCLI's hooks run: bound the config files and YAML values before they are
read (``_config_limits``); parse; check the seed and read ``--ckpt_path`` (``resume.Resume``); choose the
precision and keep the resume's step options; build the classes; then, before the Trainer writes a
file, check the run's length, its device, its result's name and its inputs (``model/preflight.py``),
take the run directory's lock, and check the resume against it; fit; say what was kept.

Options come from the typed ``__init__`` arguments of ``StyleTransfer`` (``--model.*``),
``StyleTransferData`` (``--data.*``), the Trainer (``--trainer.*``) and the callbacks below
(``--checkpoint.*``, ``--image_logger.*``, ``--result.*``); ``--print_config`` shows them all.

Exit codes: 0 done; 2 a ``UserError`` (one line naming the option to change); 128 + N stopped by
signal N (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), after saving a checkpoint and the image when training
had started. Never a traceback for any of these.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any, Iterator, Optional

from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.callbacks.checkpoint import CHECKPOINT_DEFAULTS, StepCheckpoint
from nst_lightning.callbacks.image_logger import ImageLogger
from nst_lightning.callbacks.result import SaveGeneratedImage
from nst_lightning.callbacks.run_lock import HoldRunLock
from nst_lightning.model.module import StyleTransfer
from nst_lightning.model.preflight import check_inputs
from nst_lightning.outputs.run_lock import RunLock
from nst_lightning.run._config_limits import check_arguments
from nst_lightning.run._option_checks import check_one_device, check_result_filename, check_seed
from nst_lightning.run.cli_base import BaseCLI
from nst_lightning.run.precision import PrecisionPolicy, resolve_precision
from nst_lightning.run.resume import Resume
from nst_lightning.utilities.errors import NonFiniteLossError, RunInterrupted, UserError
from nst_lightning.utilities.files import DISK_ERRNOS, WriteFailed, describe_write_failure
from nst_lightning.utilities.signals import lightnings_ctrl_c, steps

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
    # Runs go into lightning_logs/NAME/version_N, a new N for each run (run/_versions.py) unless a version
    # is named; a config names its runs with one line, `logger.init_args.name: NAME` under `trainer:`.
    # TensorBoard's placeholder hp_metric is noise here.
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "lightning_logs", "name": "nst", "version": None, "default_hp_metric": False},
    },
}


class StyleTransferCLI(BaseCLI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.resume = Resume()  # everything --ckpt_path is and may do (run/resume.py)
        super().__init__(*args, **kwargs)

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
        """Before parsing, the configs and YAML values jsonargparse would read are bounded
        (``_config_limits``); after, the seed is checked and the resume reads ``--ckpt_path`` and the
        model options asked for (LightningCLI reads the checkpoint's next)."""
        if args is None or isinstance(args, (list, tuple)):
            check_arguments(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is not None:
            check_seed(self.config[subcommand].get("seed_everything"))
            self.resume.read_arguments(self.config[subcommand])

    def before_instantiate_classes(self) -> None:
        """Right after parsing, before anything is built: the precision, the resume's step options, and
        the integer options Lightning types as plain ``int`` (the error names the option as written)."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        self._choose_precision(config)
        if self.subcommand:
            self.resume.keep_step_options(config)
        for key, minimum in INT_MINIMUMS.items():
            value = config.get(key)
            if value is not None and value < minimum:
                raise UserError(f"--{key} must be an integer >= {minimum}, not {value}")
        super().before_instantiate_classes()  # --verbose, and the run's version_N where none is named

    def before_fit(self) -> None:
        """Check everything a user can get wrong before the Trainer writes a single file."""
        config = self.config[self.subcommand]
        if self.trainer.max_steps is None or self.trainer.max_steps < 1:
            raise UserError("--trainer.max_steps must be a positive number of optimisation steps")
        check_one_device(self.trainer, config.trainer)
        check_result_filename(self.trainer, self._last_checkpoint(), config.get("ckpt_path"), self.datamodule)
        self._check_inputs(str(config.trainer.precision))
        with self._run_directory_locked():
            self.resume.check(
                config.get("ckpt_path"), self._last_checkpoint(), self.model, self.datamodule, self.trainer,
                self.trainer.log_dir, said_where=self.numbered is not None,  # number_the_run said where it looked
            )

    def fit(self, model: StyleTransfer, **kwargs: Any) -> None:
        """``trainer.fit`` with safe loading by default and errors that say what was kept."""
        # Never execute code from a checkpoint, whatever --weights_only, the torch version or the
        # environment (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) say: this program's checkpoints need none.
        kwargs["weights_only"] = True
        kwargs["ckpt_path"] = self.resume.ckpt_path(kwargs.get("ckpt_path"))
        try:
            self.trainer.fit(model, **kwargs)
        except NonFiniteLossError as err:
            raise UserError(f"{err.message}; {self._kept_after_divergence()}") from None
        except OSError as err:  # a full disk, a quota, a failing filesystem: no traceback, what is kept
            if err.errno not in DISK_ERRNOS:
                raise
            raise UserError(f"{self._write_failure(err)}; {self._last_good_checkpoint()}") from None
        except RunInterrupted as err:
            err.kept = self._kept()
            raise
        except SIGTERMException:  # Lightning's own SIGTERM stop, outside StepCheckpoint's window
            raise self._interrupted(signal.SIGTERM, saved=True) from None
        except SystemExit as err:
            # Lightning answers a Ctrl-C outside training (while setting up) with sys.exit(1).
            if lightnings_ctrl_c(err):
                raise self._interrupted(signal.SIGINT, saved=False) from None
            raise

    def after_fit(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveGeneratedImage) and callback.path is not None:
                for path in callback.paths:
                    print(f"generated image: {path}")

    # ---- the steps -------------------------------------------------------------------------------

    def _choose_precision(self, config: Any) -> None:
        precision, said = resolve_precision(
            config.get("precision_policy"), config.get("trainer.precision"), config.get("trainer.accelerator")
        )
        config["trainer"]["precision"] = precision
        if said:
            rank_zero_info(said)

    def _check_inputs(self, precision: str) -> None:
        """The model's preflight (``model/preflight.py``) under ``precision``, whose plan the model takes
        for this fit (its ``setup`` then checks nothing twice): the precision asked for, not
        the Trainer's (on CPU Lightning quietly swaps 16-mixed for bf16-mixed, and a config that fails
        on a GPU should fail the same way everywhere)."""
        self.model.take_plan(check_inputs(self.model, self.datamodule, self.trainer.max_steps, self.trainer.strategy.root_device, precision))
        if self.model.hparams.optimizer == "lbfgs" and precision in ("16-mixed", "16", "16-true"):
            raise UserError(
                "--model.optimizer lbfgs cannot run with --trainer.precision 16-mixed (its GradScaler "
                "does not support L-BFGS); use bf16-mixed, 32, or --model.optimizer adam"
            )

    @contextlib.contextmanager
    def _run_directory_locked(self) -> Iterator[None]:
        """One writer per run directory, from here (inputs are good: nothing is written for bad ones) to
        the end of the fit: a second run aimed at it, or a resume of a run still going, stops here. A
        refusal inside the block releases the lock and removes the directories it created (they held
        nothing but the lock); otherwise ``HoldRunLock`` holds it to the fit's end, however it ends."""
        if self.trainer.log_dir is None:
            yield
            return
        lock = RunLock(self.trainer.log_dir)
        try:
            lock.acquire()
        except WriteFailed as err:  # a full disk: the one line of any write, and nothing left behind
            lock.remove_created_directories()
            raise UserError(f"{err}; {self._last_good_checkpoint()}") from None
        except BaseException:
            lock.remove_created_directories()
            raise
        self.trainer.callbacks.insert(0, HoldRunLock(lock))
        try:
            yield
        except BaseException:
            lock.release()
            lock.remove_created_directories()
            raise

    # ---- what a run leaves, for its one line -------------------------------------------------------

    def _last_checkpoint(self) -> Optional[str]:
        """Where ``--ckpt_path last`` looks: the checkpoint callback's directory."""
        checkpoint = self.trainer.checkpoint_callback
        if checkpoint is None or self.trainer.log_dir is None:
            return None
        directory = checkpoint.dirpath or os.path.join(self.trainer.log_dir, "checkpoints")
        return os.path.join(directory, f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}")

    def _write_failure(self, err: OSError) -> str:
        if isinstance(err, WriteFailed):
            return str(err)
        if err.filename:
            return describe_write_failure(err.filename, err)
        # TensorBoard's event writer (a thread of its own) does not say which file.
        directory = self.trainer.log_dir or "."
        return describe_write_failure(directory, err, what=f"into {directory} (the TensorBoard event file)")

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
