"""Gatys et al. (2015) style transfer as a LightningModule whose only parameter is the image.

The core: the image parameter, ``forward`` (the loss), ``training_step``, the optimizer and the
checkpoint's shape. The Trainer does device placement, mixed precision, checkpoints (the image and
the optimizer state, not the frozen VGG19) and logging. Around the core, each in its own file: the
options in groups (``options.py``), the targets (``targets.py``), VGG19 (``vgg.py``), the callbacks
every run has (``callbacks/``), the memory check and
tile choice (``scale/budget.py``), the tiled step (``scale/tiling.py``), the loss (``loss/``).

One training step is one forward/backward pass, for Adam and for L-BFGS alike (``max_iter=1``), so
``trainer.max_steps`` counts loss evaluations with either.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, OpenUnitInterval, PositiveInt
from torch import Tensor, nn

from nst_lightning.callbacks import CoarseToFine, DivergenceGuard, LossLogger, StyleWeightRamp
from nst_lightning.inputs.color import ColorMode
from nst_lightning.inputs.data import datamodule_of
from nst_lightning.loss.guided import GuidedStatistic, MaskMethod
from nst_lightning.loss.samples import Evaluation
from nst_lightning.loss.statistics import StyleLossName
from nst_lightning.loss.total import batch_losses
from nst_lightning.model.checkpoint_checks import prepare_load
from nst_lightning.model.options import DEFAULT_STYLE_LAYERS, grouped
from nst_lightning.model.preflight import Plan, check_inputs
from nst_lightning.model.schedules import Configured
from nst_lightning.model.start import initial_image, start_of
from nst_lightning.model.targets import Measure, Photos, Targets, add_terms, kind_for
from nst_lightning.model.vgg import LayerName, PoolingName, VGG19Features
from nst_lightning.scale.iterate_average import IterateAverage
from nst_lightning.scale.multiscale import resize_run, stage_sizes
from nst_lightning.scale.tiling import tiled_step
from nst_lightning.utilities.errors import param
from nst_lightning.utilities.option_types import FiniteNonNegativeFloat, FinitePositiveFloat, PositiveFraction


class StyleTransfer(pl.LightningModule):
    def __init__(
        self,
        weights: str = "IMAGENET1K_V1",
        content_layers: list[LayerName] = ["conv4_2"],
        style_layers: list[LayerName] = DEFAULT_STYLE_LAYERS,
        style_layer_weights: Optional[list[FiniteNonNegativeFloat]] = None,
        content_weight: FiniteNonNegativeFloat = 1.0,
        style_weight: FiniteNonNegativeFloat = 10.0,
        style_weight_start: Optional[FiniteNonNegativeFloat] = None,
        style_weight_ramp: PositiveFraction = 0.5,
        tv_weight: FiniteNonNegativeFloat = 0.0,
        style_loss: StyleLossName = "gram",
        sw_directions: Optional[PositiveInt] = None,
        nn_refresh: PositiveInt = 1,
        optimizer: Literal["adam", "lbfgs"] = "adam",
        lr: Optional[FinitePositiveFloat] = None,
        lr_schedule: Literal["constant", "cosine", "linear"] = "constant",
        lr_floor: FiniteNonNegativeFloat = 0.0,
        warmup_steps: NonNegativeInt = 0,
        lr_decay_fraction: PositiveFraction = 1.0,
        lbfgs_history: PositiveInt = 100,
        init: Literal["content", "painting_colors", "noise", "image"] = "content",
        init_image: Optional[str] = None,
        init_color_strength: ClosedUnitInterval = 1.0,
        pooling: PoolingName = "max",
        preserve_colors: ColorMode = "none",
        stage_steps: Optional[list[PositiveInt]] = None,
        ema_decay: Optional[OpenUnitInterval] = None,
        memory_format: Literal["auto", "channels_last", "contiguous"] = "auto",
        activation_checkpointing: bool = False,
        tile_size: Optional[PositiveInt] = None,
        max_memory_gb: Optional[FinitePositiveFloat] = None,
        check_memory: bool = True,
        sync_every: Optional[PositiveInt] = None,
        region_masks: MaskMethod = "downsample",
        parameterisation: Literal["pixels", "laplacian_pyramid"] = "pixels",
        pyramid_levels: PositiveInt = 5,
        pyramid_band_gain: FinitePositiveFloat = 1.0,
    ) -> None:
        """
        Args:
            weights: VGG19 weights: ``IMAGENET1K_V1`` (torchvision, downloaded once), ``random`` (untrained,
                for offline tests) or the path of a ``vgg19``/``vgg19().features`` state dict.
            content_layers: Layers whose activations the result must share with the content image.
            style_layers: Layers whose style statistics the result must share with the style image.
            style_layer_weights: One weight per style layer, normalised to sum to 1 (default: equal, as in the paper).
            content_weight: Weight of the content loss (the paper's alpha).
            style_weight: Weight of the style loss (the paper's beta); losses are normalised, so style/content is comparable.
            style_weight_start: The style weight at the first step as a fraction of ``style_weight``, moving linearly
                to ``style_weight`` over the first ``style_weight_ramp`` of the run (``callbacks/style_weight.py``);
                None: ``style_weight`` throughout.
            style_weight_ramp: With ``style_weight_start``: the part of ``trainer.max_steps`` the move takes.
            tv_weight: Weight of the total-variation (smoothness) loss; 0 disables it.
            style_loss: ``gram`` (the paper's Gram matrices), ``wasserstein`` (mean and covariance, as crowsonkb's),
                ``sliced_wasserstein`` (whole feature distributions along random directions, Heitz et al. 2021) or
                ``nearest_neighbour`` (each place toward its nearest painting feature, NNST); see docs/guide/style-losses.md.
            sw_directions: With ``sliced_wasserstein``: random directions per layer and step (default: the layer's channels).
            nn_refresh: With ``nearest_neighbour``: match anew every N steps (1: every step; resumes exact at multiples of N).
            optimizer: ``adam`` (robust, works with mixed precision) or ``lbfgs`` (the paper's).
            lr: Step size; default 0.02 for Adam (in units of the [0, 1] pixel range), 1.0 for L-BFGS.
            lr_schedule: Adam's step size over the run: ``constant``, or ``cosine``/``linear`` decay to lr * lr_floor.
            lr_floor: The step size at the run's end as a fraction of lr, with ``cosine`` or ``linear``.
            warmup_steps: Steps of linear warm-up from ~0 to lr first (``model/schedules.py``).
            lr_decay_fraction: The part of the run a cosine/linear decay takes, at its end (1: all after the warm-up).
            lbfgs_history: Number of past updates L-BFGS keeps to approximate curvature.
            init: Start from the ``content`` image, from it recoloured to the painting's colour mean and
                covariance (``painting_colors``: fewer steps to the same result; the photo itself with
                ``preserve_colors`` or regions), from uniform ``noise`` (the paper's Fig. 2) or ``init_image``.
            init_image: With ``init: image``: an image (file, URL, ``builtin:NAME``), resized to the content's
                size, or a ``.ckpt`` this program wrote, whose image (its average) starts a new run at step 0.
            init_color_strength: With ``painting_colors``: how far toward the painting's colours the start goes (1: all).
            pooling: ``max`` (torchvision's VGG19) or ``avg``, the paper's choice, with a gain (``vgg.AVG_POOL_GAIN``).
            preserve_colors: Keep the photo's colours (Gatys et al. 2017): ``luminance`` (style on luminance
                only), ``histogram`` (the painting recoloured to the photo's colours first) or ``none``.
            stage_steps: Coarse-to-fine: steps of each stage before the last, smallest first, each sqrt(2)
                times the previous size; the last is ``data.image_size`` with the rest of ``trainer.max_steps``.
            ema_decay: Output the moving average of the iterates with this decay (0.99: the last ~100 steps).
            memory_format: ``channels_last`` (NHWC) or ``contiguous`` (NCHW) activations; ``auto``: NHWC on
                a CPU and under mixed precision on a GPU, NCHW for fp32 on a GPU.
            activation_checkpointing: Recompute each VGG19 block in the backward pass: less memory, more time.
            tile_size: Compute each step in tiles of about this many pixels a side: memory follows the tile,
                not the image, and the gradient is the untiled one (``scale/tiling.py``).
            max_memory_gb: A memory budget that chooses the tile size of each stage (untiled where it fits).
            check_memory: Refuse a run whose estimated memory exceeds what the device has free; ``false``: try.
            sync_every: Read the loss to the host every N steps; default 1 on a CPU, 50 on a GPU.
            region_masks: With ``data.regions``, how a mask reaches each layer (Gatys et al. 2017):
                ``downsample`` (averaged over each position's pixels) or ``propagate`` (through the network).
            parameterisation: What the optimizer moves: the image's ``pixels``, or its ``laplacian_pyramid``'s
                coordinates, whose coarse bands move the large shapes in few steps (``parameterisation/``).
            pyramid_levels: With ``laplacian_pyramid``: its bands, each coarser one half the last's sides.
            pyramid_band_gain: With ``laplacian_pyramid``: each coarser band's step as a multiple of the next finer
                band's (1: every band moves by ``lr``; 2: the next coarser twice as far).
        """
        super().__init__()
        self.save_hyperparameters()
        # VGG19's weights are frozen and deterministic: kept out of checkpoints (see `state_dict`),
        # so a checkpoint is the image and the optimizer state, and loading may not ask for them.
        self.strict_loading = False
        self.register_load_state_dict_post_hook(_forgive_missing_vgg_weights)
        self.loss_options, self.optim, self.compute, self.control = grouped(self.hparams)
        self.loss_weights = self.loss_options.loss_weights()
        # What the loss uses: the style statistic, taking regions' guided targets too (plain ones pass through).
        self.style_statistic = self.loss_options.statistic()
        self.loss_statistic = GuidedStatistic(self.style_statistic)
        self.vgg = VGG19Features(self.loss_options.layers, weights, pooling, param("model.weights"), activation_checkpointing)
        self.tiled_loss = self.compute.tiled_loss(self.vgg, self.loss_weights, self.loss_statistic)
        self.automatic_optimization = self.tiled_loss is None  # tiles backpropagate one by one: manual optimization
        self.plan: Optional[Plan] = None  # the preflight's for this fit (model/preflight.py): a memory budget, a start image
        self.parameterisation = self.optim.parameterised()  # the optimizer's view of the image
        self.register_parameter("image", None)  # created in `setup`, once the content image's size is known
        self.average: Optional[IterateAverage] = None  # the averaged iterates (ema_decay), checkpointed
        self.target_kind = None  # targets.kind_for the datamodule, unless a caller sets one
        # ``targets.Targets``: per image of the result its content features and style targets; the colours.
        self.targets, self.content_colors, self.target_terms = [], None, ()

    # The first (or only) image's content features and style targets.
    content_targets = property(lambda self: self.targets[0][0] if self.targets else {})
    style_targets = property(lambda self: self.targets[0][1] if self.targets else {})

    def configure_callbacks(self) -> list[pl.Callback]:
        sync_every = self.compute.sync_every
        ramp = StyleWeightRamp(self.loss_options.style_weight_start, self.loss_options.style_weight_ramp)
        return [DivergenceGuard(sync_every), LossLogger(sync_every), CoarseToFine(self.optim.stages), ramp]

    def take_plan(self, plan: Plan) -> None:
        """What the preflight decided for the next fit (the CLI and ``stylize()`` check before the Trainer
        writes anything; without a plan, ``setup`` makes one)."""
        self.plan = plan

    def setup(self, stage: str) -> None:
        datamodule = datamodule_of(self.trainer)
        if self.plan is None:
            self.take_plan(check_inputs(self, datamodule, self.trainer.max_steps, self.trainer.strategy.root_device, str(self.trainer.precision)))
        first_size = stage_sizes(datamodule.image_size, len(self.optim.stages) + 1)[0]
        content = datamodule.images(first_size)[0]
        if self.image is None or self.image.shape != content.shape:
            init = start_of(self.optim.init, self.control.preserve_colors, datamodule.regions)
            members = datamodule.members(first_size) if init == "painting_colors" else None
            # NCHW whatever the source's strides: L-BFGS flattens the parameter and its gradient.
            self.image = nn.Parameter(initial_image(init, content, self.plan.start_image, members, self.optim.init_color_strength).contiguous())
            if self.optim.ema_decay is not None:
                self.average = IterateAverage(self.image, self.optim.ema_decay)

    def teardown(self, stage: str) -> None:
        self.plan = None  # a next fit checks its own inputs

    def on_fit_start(self) -> None:
        # Here, not in __init__: the layout depends on the device and precision the Trainer chose.
        self.vgg.use_channels_last(self.compute.channels_last(self.device, str(self.trainer.precision)))
        self.refresh_targets()

    def refresh_targets(self) -> None:
        """Targets for the image's current size, from the inputs the datamodule resizes from source."""
        datamodule = datamodule_of(self.trainer)
        if self.plan is not None and self.plan.memory_budget is not None:
            self.plan.memory_budget.choose_tile(self.tiled_loss, *self.image.shape[-2:])
        kind = self.target_kind or kind_for(datamodule, self.control.region_masks)
        self.use_targets(kind.compute(self.measure(), datamodule, max(self.image.shape[-2:])))

    @torch.no_grad()
    def change_size(self, size: tuple[int, int]) -> None:
        """Coarse-to-fine's next stage (``callbacks/coarse_to_fine.py`` asks for it): the image, its average
        and the optimizer's state (of the image, or of its pyramid's coordinates: ``parameterisation``) move to
        ``size`` (``scale/multiscale.resize_run``), and the targets follow."""
        def new_optimizer(image: Tensor) -> torch.optim.Optimizer:  # L-BFGS's restart, on what the parameterisation optimises
            return self.optim.make_optimizer(self.parameterisation.optimised(image))

        optimizers = resize_run(self.image, self.average, self.trainer.optimizers, size, new_optimizer, self.parameterisation.resize_state)
        if optimizers != self.trainer.optimizers:  # L-BFGS: a new one, of the new size
            self.trainer.optimizers = optimizers
        self.refresh_targets()

    def weigh_style(self, factor: float) -> None:
        """The style loss weighs ``factor`` times ``style_weight`` from the next step on (``StyleWeightRamp``)."""
        self.loss_weights = replace(self.loss_weights, style=self.loss_options.style_weight * factor)
        if self.tiled_loss is not None:
            self.tiled_loss.weights = self.loss_weights

    def compute_targets(self, content: Tensor, style: Tensor | list[Tensor], blend_weights: Optional[list[float]] = None) -> None:
        """The targets of one photo ``[1, 3, H, W]`` and its painting(s), without a datamodule."""
        self.use_targets(Photos.of(self.measure(), content, style, blend_weights))

    def measure(self) -> Measure:
        return Measure(self.vgg, self.style_statistic, self.loss_weights, self.control, self.tiled_loss, self.device)

    def use_targets(self, targets: Targets) -> None:
        self.targets, self.content_colors, self.target_terms = targets.images, targets.colors, tuple(targets.terms)

    def result(self, image: Optional[Tensor] = None) -> Tensor:
        """The output ``[K, 3, H, W]`` in [0, 1]: the averaged iterates with ``ema_decay``, else the image
        (or ``image``, e.g. the last finite one); with ``preserve_colors: luminance``, in the photo's colours."""
        if image is None:
            averaged = self.average is not None and self.average.count.item() > 0
            image = self.average.get() if averaged else self.image
        image = image.detach().float()
        return self.control.output(image, self.content_colors).clamp(0, 1)

    # ---- the loss and the optimisation -------------------------------------------------------

    def forward(self, image: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The loss of ``image`` (default: the generated image) and its parts: Gatys et al. (2015) Eq. 7, a
        smoothness prior, and the terms a kind of target adds (``targets.add_terms``)::

            loss = content_weight * mean over content_layers of content_loss
                 + style_weight   * sum over style_layers of (layer weight) * style_loss   (weights sum to 1)
                 + tv_weight      * total_variation(image)
                 + sum of target_terms(image)                                            (e.g. video's temporal loss)

        each content and style loss relative to its target (``loss/functional.py``), the style loss the
        statistic's (Gram, Wasserstein, sliced Wasserstein or nearest neighbour, ``loss/statistics.py``; the
        last two draw their directions or keep their matches by the step, ``loss.samples.Evaluation``); K
        photos: the sum of their losses.
        Written once, in ``loss.total.weighted_losses`` (``batch_losses`` takes it over K photos); the
        tiled step (``scale/tiling.py``) calls the same."""
        image = self.image if image is None else image
        features, evaluation = self.vgg(self.control.vgg_input(image)), Evaluation.at(self.global_step)
        losses = batch_losses(features, image, self.targets, self.loss_weights, self.loss_statistic, evaluation)
        return add_terms(losses, self.target_terms, image)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        # "loss" is optimised (LossLogger logs it and its parts); tiled, the tiles backpropagate one by one.
        return self() if self.automatic_optimization else tiled_step(self, self.optimizers())

    def configure_optimizers(self) -> Configured:
        return self.optim.configure_optimizers(self.parameterisation.optimised(self.image), self.trainer.max_steps)

    def on_after_backward(self) -> None:
        if self.automatic_optimization:  # tiled: once its last tile is done (scale/tiling.py)
            self.parameterisation.gradient_done(self.image)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.after_step()

    def after_step(self) -> None:
        self.parameterisation.step_done(self.image, clamp=self.optim.optimizer == "adam")  # see its docstring
        if self.average is not None:
            self.average.update(self.image)

    # ---- checkpoints hold the image and the optimizer state, not the frozen VGG19 ---------------

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)
        for key in [key for key in state if key.startswith("vgg.")]:
            del state[key]
        return state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checked whole first (no tensor is allocated from an untrusted shape), then the parameter and
        # the average take the saved shape, that of the checkpoint's stage: model/checkpoint_checks.py.
        prepare_load(self, checkpoint)


def _forgive_missing_vgg_weights(module: nn.Module, incompatible_keys: Any) -> None:
    """Loading a checkpoint (which never holds VGG19's frozen weights) leaves them as they are; so that
    ``load_from_checkpoint`` does not warn about each of them, they are not reported as missing."""
    incompatible_keys.missing_keys[:] = [key for key in incompatible_keys.missing_keys if not key.startswith("vgg.")]
