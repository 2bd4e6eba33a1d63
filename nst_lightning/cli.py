"""``python -m nst_lightning``: LightningCLI with the project's callbacks and its error handling.

Options come from the typed ``__init__`` arguments of ``StyleTransfer`` (``--model.*``),
``StyleTransferData`` (``--data.*``), the Trainer (``--trainer.*``) and the callbacks below
(``--checkpoint.*``, ``--image_logger.*``, ``--result.*``); ``--print_config`` shows them all.
"""

from __future__ import annotations

import os
import sys
import warnings
from argparse import ArgumentError
from typing import Optional

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI

from nst_lightning.callbacks import ImageLogger, SaveGeneratedImage, StepCheckpoint
from nst_lightning.data import StyleTransferData
from nst_lightning.errors import UserError
from nst_lightning.module import StyleTransfer

TRAINER_DEFAULTS = {
    "max_steps": 500,
    # One image is one optimisation problem: several devices would only duplicate it.
    "devices": 1,
    "log_every_n_steps": 10,
    # A fixed run directory (lightning_logs/nst) so that `--ckpt_path last` finds the last checkpoint;
    # configs name their own. TensorBoard's placeholder hp_metric is noise here.
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "lightning_logs", "name": "nst", "version": "", "default_hp_metric": False},
    },
}


class StyleTransferCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # Always-on callbacks with their own config sections, so YAML can tune them without having
        # to restate the whole trainer.callbacks list.
        parser.add_lightning_class_args(StepCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": 100,
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": -1,  # keep each periodic checkpoint; each is ~3 image sizes
                "checkpoint.filename": "step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
                # A resume writes into the same run: overwrite step files and last.ckpt rather than
                # adding last-v1.ckpt, which `--ckpt_path last` would then not pick.
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(ImageLogger, "image_logger")
        parser.add_lightning_class_args(SaveGeneratedImage, "result")

    def before_fit(self) -> None:
        """Check everything a user can get wrong before the Trainer writes a single file."""
        self.datamodule.load()
        if self.trainer.max_steps is None or self.trainer.max_steps < 1:
            raise UserError("--trainer.max_steps must be a positive number of optimisation steps")
        self.model.check_run(self.datamodule, self.trainer.max_steps)
        # The precision asked for, not the Trainer's: on CPU Lightning quietly swaps 16-mixed for
        # bf16-mixed, and a config that fails on a GPU should fail the same way everywhere.
        precision = str(self.config[self.subcommand].trainer.precision)
        if self.model.hparams.optimizer == "lbfgs" and precision in ("16-mixed", "16", "16-true"):
            raise UserError(
                "--model.optimizer lbfgs cannot run with --trainer.precision 16-mixed (its GradScaler "
                "does not support L-BFGS); use bf16-mixed, 32, or --model.optimizer adam"
            )
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        checkpoint = self.trainer.checkpoint_callback
        if ckpt_path is None and checkpoint is not None and self.trainer.log_dir is not None:
            last = os.path.join(checkpoint.dirpath or os.path.join(self.trainer.log_dir, "checkpoints"), "last.ckpt")
            if os.path.exists(last):
                raise UserError(
                    f"{os.path.normpath(self.trainer.log_dir)} already holds a run ({last}); resume it with --ckpt_path last, "
                    "or start a new one elsewhere with --trainer.logger.init_args.version NAME"
                )

    def after_fit(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveGeneratedImage) and callback.path is not None:
                print(f"generated image: {callback.path}")


def cli_main(args: Optional[list[str]] = None) -> StyleTransferCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``). User errors exit with code 2 and one line."""
    # Two Lightning warnings that are wrong for an image-as-parameter module: the frozen VGG19 is in
    # eval mode on purpose, and the "batches" are step indices, so restarting them on resume is exact.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
    try:
        return StyleTransferCLI(
            StyleTransfer,
            StyleTransferData,
            args=args,
            trainer_defaults=TRAINER_DEFAULTS,
            auto_configure_optimizers=False,  # the module builds its own optimizer over the image
            save_config_kwargs={"overwrite": True},  # a resume writes config.yaml into the same run
            # exit_on_error=False: a bad option raises instead of printing the 90-line usage; we print
            # one line below.
            parser_kwargs={"prog": "python -m nst_lightning", "exit_on_error": False},
        )
    except ArgumentError as err:
        message = " ".join(line.strip() for line in str(err).splitlines())
        print(f"nst_lightning: error: {message}; see python -m nst_lightning fit --help", file=sys.stderr)
        raise SystemExit(2) from None
    except (UserError, MisconfigurationException) as err:
        print(f"nst_lightning: error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2) from None
