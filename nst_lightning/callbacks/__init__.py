"""The callbacks of a run, one per file, each re-exported here.

Every ``StyleTransfer`` adds four itself (its ``configure_callbacks``): ``DivergenceGuard`` (stops
at the first non-finite loss, ``divergence``), ``LossLogger`` (the loss and its parts, ``loss_logger``),
``CoarseToFine`` (the stages of ``--model.stage_steps``, ``coarse_to_fine``) and ``StyleWeightRamp``
(the style weight over the run, ``--model.style_weight_start``, ``style_weight``). A run of the CLI or
of ``stylize()`` adds those that write its files: ``StepCheckpoint`` (``--checkpoint.*``,
``checkpoint``), ``SaveGeneratedImage`` (``--result.*``, ``result``), ``ImageLogger``
(``--image_logger.*``, ``image_logger``), ``HoldRunLock`` (the run directory's lock, held to the
fit's end, ``run_lock``) and ``StepProgressBar`` (the progress bar in steps, ``progress``). The
video's and the page's callbacks are their rooms' own (``video/temporal.py``, ``video/style_cache.py``,
``ui/live.py``).

Imports ``outputs`` (result images, the run lock), ``scale`` (the stages' sizes), ``inputs``
(checkpoints read safely) and ``utilities``; never the model (it duck-types the module) or the run.
"""

from nst_lightning.callbacks.checkpoint import StepCheckpoint
from nst_lightning.callbacks.coarse_to_fine import CoarseToFine
from nst_lightning.callbacks.divergence import DivergenceGuard
from nst_lightning.callbacks.image_logger import ImageLogger
from nst_lightning.callbacks.loss_logger import LossLogger
from nst_lightning.callbacks.progress import StepProgressBar
from nst_lightning.callbacks.result import SaveGeneratedImage
from nst_lightning.callbacks.run_lock import HoldRunLock
from nst_lightning.callbacks.style_weight import StyleWeightRamp

__all__ = [
    "CoarseToFine",
    "DivergenceGuard",
    "HoldRunLock",
    "ImageLogger",
    "LossLogger",
    "SaveGeneratedImage",
    "StepCheckpoint",
    "StepProgressBar",
    "StyleWeightRamp",
]
