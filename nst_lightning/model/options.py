"""``StyleTransfer``'s options, grouped by what they decide.

Users see them flat (``--model.lr``, ``StyleTransfer(lr=...)``, ``stylize(lr=...)``), and checkpoints
save them flat as hyperparameters; inside, the module builds each group once from ``hparams``, and
each group checks its own fields:

- ``LossOptions``: what is optimised: the network, its layers and the loss's weights;
- ``OptimOptions``: how: the optimizer, its step size and its schedule, the start, the stages, the
  averaged output, what the optimizer moves (pixels or a Laplacian pyramid's coordinates);
- ``ComputeOptions``: how a step is computed (layout, checkpointing, tiles, memory, how often the loss
  is read to the host); the same result up to float rounding, so a resume may change them
  (``MAY_CHANGE_ON_RESUME``);
- ``ControlOptions``: Gatys et al. (2017)'s perceptual controls: colour and regions.

``tests/model/test_options.py`` checks that the groups' fields are exactly ``StyleTransfer``'s
arguments, with the same defaults, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from nst_lightning.inputs.color import gray, match_color_histogram, match_luminance, with_chroma_of
from nst_lightning.loss.statistics import StyleStatistic, style_statistic
from nst_lightning.loss.total import LossWeights
from nst_lightning.model.schedules import Configured, with_schedule
from nst_lightning.parameterisation.coordinates import Parameterisation, make_parameterisation
from nst_lightning.scale.tiling import TiledLoss
from nst_lightning.utilities.errors import UserError, new_run_hint, param

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]  # a list, as checkpoints save it
DEFAULT_LR = {"adam": 0.02, "lbfgs": 1.0}


@dataclass(frozen=True)
class LossOptions:
    """The network and what the loss weighs (see ``StyleTransfer`` for each option)."""

    weights: str = "IMAGENET1K_V1"
    content_layers: tuple[str, ...] = ("conv4_2",)
    style_layers: tuple[str, ...] = tuple(DEFAULT_STYLE_LAYERS)
    style_layer_weights: Optional[tuple[float, ...]] = None
    content_weight: float = 1.0
    style_weight: float = 10.0
    style_weight_start: Optional[float] = None
    style_weight_ramp: float = 0.5
    tv_weight: float = 0.0
    style_loss: str = "gram"
    sw_directions: Optional[int] = None
    nn_refresh: int = 1
    pooling: str = "max"

    def __post_init__(self) -> None:
        self.loss_weights()  # refuses combinations that leave nothing to optimise
        self.statistic()  # refuses an option of another style loss

    def statistic(self) -> StyleStatistic:
        """The style loss's statistic (``loss/statistics.py``), with its own options."""
        return style_statistic(self.style_loss, sw_directions=self.sw_directions, nn_refresh=self.nn_refresh)

    def loss_weights(self) -> LossWeights:
        return LossWeights.from_options(
            self.content_layers, self.style_layers, self.style_layer_weights, self.content_weight, self.style_weight, self.tv_weight
        )

    def check_steps(self, max_steps: Optional[int]) -> None:
        """A style weight's ramp takes a part of the run: it needs the run's length."""
        if self.style_weight_start is not None and (max_steps is None or max_steps < 1):
            raise UserError(f"{param('model.style_weight_start')} needs {param('trainer.max_steps')}, the run's length")

    @property
    def layers(self) -> list[str]:
        return list(self.content_layers) + list(self.style_layers)


@dataclass(frozen=True)
class OptimOptions:
    """How the image is optimised: the optimizer, where it starts, the stages, the output's average."""

    optimizer: str = "adam"
    lr: Optional[float] = None
    lr_schedule: str = "constant"
    lr_floor: float = 0.0
    warmup_steps: int = 0
    lr_decay_fraction: float = 1.0
    lbfgs_history: int = 100
    init: str = "content"
    init_image: Optional[str] = None
    init_color_strength: float = 1.0
    stage_steps: Optional[tuple[int, ...]] = None
    ema_decay: Optional[float] = None
    parameterisation: str = "pixels"
    pyramid_levels: int = 5
    pyramid_band_gain: float = 1.0

    def __post_init__(self) -> None:
        if (self.init == "image") != (self.init_image is not None):
            raise UserError(
                f"{param('model.init')} image needs {param('model.init_image')} PATH" if self.init == "image"
                else f"{param('model.init_image')} is set but {param('model.init')} is {self.init}; add {param('model.init')} image"
            )
        if self.lr_floor > 1:
            raise UserError(
                f"{param('model.lr_floor')} {self.lr_floor:g} is the step size at the end as a fraction of {param('model.lr')}: give at most 1"
            )

    @property
    def scheduled(self) -> bool:
        """Whether the step size follows a schedule (otherwise it is ``lr`` throughout, as before schedules
        existed). Adam's only: L-BFGS sizes each step from its curvature estimate, which a schedule would
        distort. ``lr_floor`` and ``lr_decay_fraction`` shape a decay, so ``constant`` has no use for them;
        neither is refused, so that a config with a schedule (``configs/quick.yaml``) layers under
        ``--model.optimizer lbfgs`` or ``--model.lr_schedule constant``."""
        return self.optimizer == "adam" and self._asks_for_schedule

    @property
    def _asks_for_schedule(self) -> bool:
        return self.lr_schedule != "constant" or self.warmup_steps > 0

    @property
    def unused_schedule(self) -> Optional[str]:
        """The line that says a schedule asked for is not used (with L-BFGS); None when there is none."""
        if self.optimizer != "lbfgs" or not self._asks_for_schedule:
            return None
        # Plain names (a log line, not an error the CLI rewords): lr_schedule, warmup_steps.
        return (
            f"L-BFGS sizes each step from its curvature estimate: lr_schedule {self.lr_schedule} "
            f"and warmup_steps {self.warmup_steps} are not used"
        )

    def check_steps(self, max_steps: Optional[int]) -> None:
        """A schedule runs over ``max_steps``: it needs one, and a warm-up shorter than the run."""
        if not self.scheduled:
            return
        if max_steps is None or max_steps < 1:
            raise UserError(f"{param('model.lr_schedule')} and {param('model.warmup_steps')} need {param('trainer.max_steps')}, the run's length")
        if self.warmup_steps >= max_steps:
            raise UserError(
                f"{param('model.warmup_steps')} {self.warmup_steps} does not fit in {param('trainer.max_steps')} {max_steps}: "
                f"the warm-up would take the whole run; lower {param('model.warmup_steps')} or raise {param('trainer.max_steps')}"
            )

    @property
    def stages(self) -> list[int]:
        """The steps of each coarse-to-fine stage before the last (none: one stage)."""
        return list(self.stage_steps or [])

    def parameterised(self) -> Parameterisation:
        """What the optimizer moves: the image's pixels, or its Laplacian pyramid's coordinates."""
        return make_parameterisation(self.parameterisation, self.pyramid_levels, self.pyramid_band_gain)

    def make_optimizer(self, optimised: Tensor) -> torch.optim.Optimizer:
        """The optimizer of ``optimised``: the image, or its parameterisation's coordinates (``optimised``)."""
        lr = self.lr or DEFAULT_LR[self.optimizer]
        if self.optimizer == "lbfgs":
            # max_iter=1: one Lightning step is one evaluation, so max_steps, logging and checkpoint
            # intervals mean the same thing as with Adam. L-BFGS keeps its history across steps.
            return torch.optim.LBFGS([optimised], lr=lr, max_iter=1, history_size=self.lbfgs_history)
        return torch.optim.Adam([optimised], lr=lr)

    def configure_optimizers(self, optimised: Tensor, max_steps: int) -> Configured:
        """``StyleTransfer.configure_optimizers``: the optimizer alone without a schedule (as before
        schedules existed: the same results and checkpoints), else with its step-wise ``LambdaLR``."""
        optimizer = self.make_optimizer(optimised)
        if self.unused_schedule:
            rank_zero_info(self.unused_schedule)
        if not self.scheduled:
            return optimizer
        return with_schedule(optimizer, self.lr_schedule, self.lr_floor, self.warmup_steps, max_steps, self.lr_decay_fraction)

    def check_images(self, count: int, tiled: bool) -> None:
        """K photos optimised together need Adam, untiled."""
        if count > 1 and (self.optimizer == "lbfgs" or tiled):
            what = param("model.optimizer") + " lbfgs" if self.optimizer == "lbfgs" else "tiles"
            raise UserError(
                f"{count} photos optimised together cannot use {what} (L-BFGS's line search and history would couple "
                f"the images; tiles are for one large image); use {param('model.optimizer')} adam, untiled, or one photo at a time"
            )


@dataclass(frozen=True)
class ComputeOptions:
    """How a step is computed: the same result up to float rounding, whatever these say (``sync_every``:
    how often the loss is read to the host, which the result does not depend on at all)."""

    memory_format: str = "auto"
    activation_checkpointing: bool = False
    tile_size: Optional[int] = None
    max_memory_gb: Optional[float] = None
    check_memory: bool = True
    sync_every: Optional[int] = None

    def __post_init__(self) -> None:
        if self.tile_size is not None and self.max_memory_gb is not None:
            raise UserError(
                f"{param('model.tile_size')} and {param('model.max_memory_gb')} are both set; give one: "
                "a tile size, or a budget that chooses it"
            )

    @property
    def tiled(self) -> bool:
        """Whether steps go tile by tile (a budget may still find one tile enough, per stage)."""
        return self.tile_size is not None or self.max_memory_gb is not None

    def tiled_loss(self, vgg: Any, weights: LossWeights, statistic: Any) -> Optional[TiledLoss]:
        """The tiled step's loss, or None untiled; with a budget, its tile size is set per stage."""
        if not self.tiled:
            return None
        tiled = TiledLoss(vgg, weights, statistic, self.tile_size or 0)
        if self.tile_size is not None and self.tile_size < tiled.align:
            raise UserError(
                f"{param('model.tile_size')} {self.tile_size} is below the smallest tile these layers allow, "
                f"{tiled.align} px (tiles are aligned to the deepest layer's stride); give at "
                f"least {tiled.align}, 512 or more for speed, or {param('model.max_memory_gb')} to choose it"
            )
        return tiled

    def channels_last(self, device: torch.device, precision: str) -> bool:
        """``auto``: NHWC on a CPU and under mixed precision on a GPU, NCHW for fp32 on a GPU."""
        if self.memory_format == "auto":
            return device.type == "cpu" or "mixed" in precision
        return self.memory_format == "channels_last"


@dataclass(frozen=True)
class ControlOptions:
    """Gatys et al. (2017)'s controls: the photo's colours kept, and how region masks reach each layer."""

    preserve_colors: str = "none"
    region_masks: str = "downsample"

    @property
    def luminance(self) -> bool:
        return self.preserve_colors == "luminance"

    def vgg_input(self, image: Tensor) -> Tensor:
        """What VGG19 sees of an image (the result, or the photo): its luminance, as grey, with
        ``preserve_colors: luminance`` (luminance-only transfer), else the image itself."""
        return gray(image) if self.luminance else image

    def as_painting(self, style: Tensor, content: Tensor) -> Tensor:
        """A painting as its statistics are taken: matched to the photo's luminance or colours with
        ``preserve_colors``, else as it is."""
        if self.luminance:
            return match_luminance(style, content)
        return match_color_histogram(style, content) if self.preserve_colors == "histogram" else style

    def colors_to_keep(self, content: Tensor) -> Optional[Tensor]:
        # Kept only where the result needs it: a whole-image tensor of 12 bytes a pixel.
        return content if self.luminance else None

    def output(self, image: Tensor, colors: Optional[Tensor]) -> Tensor:
        """The image as the user gets it: with ``luminance``, its luminance in the photo's colours."""
        return with_chroma_of(image, colors.to(image.device)) if self.luminance and colors is not None else image


GROUPS = (LossOptions, OptimOptions, ComputeOptions, ControlOptions)
# What a resume may change: how a step is computed, not what is optimised.
MAY_CHANGE_ON_RESUME = tuple(field.name for field in fields(ComputeOptions))


def grouped(hparams: Mapping[str, Any]) -> tuple[LossOptions, OptimOptions, ComputeOptions, ControlOptions]:
    """The four groups of ``StyleTransfer``'s hyperparameters, checked, in that order."""

    def plain(value: Any) -> Any:  # lists as tuples (the groups are frozen), jsonargparse's number types as plain ones
        return tuple(plain(v) for v in value) if isinstance(value, (list, tuple)) else value

    return tuple(group(**{f.name: plain(hparams[f.name]) for f in fields(group) if f.name in hparams}) for group in GROUPS)  # type: ignore[return-value]


def check_same_optimizer(checkpoint: Mapping[str, Any], optim: OptimOptions, name: str = "the checkpoint") -> None:
    """A checkpoint's optimizer state can only continue with the optimizer that made it, moving what
    it moved: the pixels (as in checkpoints made before the option existed) or a pyramid's coordinates."""
    _check_same_state_maker(checkpoint, "optimizer", optim.optimizer, None, name)
    _check_same_state_maker(checkpoint, "parameterisation", optim.parameterisation, "pixels", name)


def _check_same_state_maker(checkpoint: Mapping[str, Any], option: str, value: str, default: Optional[str], name: str) -> None:
    saved = checkpoint.get("hyper_parameters", {}).get(option, default)
    if saved is not None and saved != value:
        raise UserError(
            f"{param('model.' + option)} is {value} but {name} was made with {saved}, whose optimizer state "
            f"{value} cannot continue; resume with {param('model.' + option)} {saved}, {new_run_hint(name)}"
        )
