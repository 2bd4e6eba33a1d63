"""``BaseCLI``: LightningCLI as this program runs any model, before ``StyleTransferCLI`` (``cli.py``)
adds what is particular to style transfer.

- ``fit`` is its only subcommand: validate, test and predict need data such a run does not have.
- Each run gets a directory of its own where the logger names no version (``_versions.py``).
- Its output is a progress bar in steps (``callbacks/progress.py``), this program's lines and real
  warnings; ``--verbose`` adds Lightning's lines about itself and the model summary (``quiet.py``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Optional

from jsonargparse import ActionYesNo
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.callbacks.checkpoint import StepCheckpoint
from nst_lightning.callbacks.progress import with_step_progress_bar
from nst_lightning.run._versions import NumberedRun, number_the_run
from nst_lightning.run.quiet import without_lightning_chatter

# Where a run keeps its last checkpoint (StepCheckpoint's default directory): `--ckpt_path last` looks there.
LAST_CHECKPOINT = os.path.join("checkpoints", StepCheckpoint.CHECKPOINT_NAME_LAST + StepCheckpoint.FILE_EXTENSION)


class BaseCLI(LightningCLI):
    # The version chosen for a run whose logger named none (_versions.py).
    numbered: Optional[NumberedRun] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # What the run sets up for its own length and undoes at its end, however it ends (the filter of
        # Lightning's lines, an unused claimed directory): LightningCLI parses, builds and fits in here.
        self._until_the_end = contextlib.ExitStack()
        with self._until_the_end:
            super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit`` alone: validate, test and predict need data a style transfer does not have (the image is
        the only parameter; there is nothing held out to evaluate or predict on)."""
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--verbose", action=ActionYesNo, default=False,
            help="also Lightning's own lines (accelerators, mixed precision, seed, restored checkpoint) and the model summary",
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is not None and not self.config[subcommand].get("verbose"):
            self._until_the_end.enter_context(without_lightning_chatter())

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config.get("verbose"):
            config["trainer"]["enable_model_summary"] = True
        if self.subcommand:  # where the logger names no version: this run's version_N
            self.numbered = number_the_run(config, LAST_CHECKPOINT, self._until_the_end, rank_zero_info)

    def after_instantiate_classes(self) -> None:
        if self.numbered is not None:
            self.numbered.forget()

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The Trainer, its progress bar a ``StepProgressBar`` (unless it is off, or another is given)."""
        callbacks = with_step_progress_bar((self.config_init.get(self.subcommand) if self.subcommand else self.config_init).get("trainer") or {})
        if callbacks is not None:
            kwargs.setdefault("callbacks", callbacks)
        return super().instantiate_trainer(**kwargs)
