"""Gatys et al. (2015) style transfer as a LightningModule whose only parameter is the image.

The core: the image parameter, the targets, ``forward`` (the loss), ``training_step`` and the
optimizer. The Trainer does device placement, mixed precision, checkpoints (the image and the
optimizer state, not the frozen VGG19) and logging. What cuts across runs lives elsewhere: the
coarse-to-fine schedule (``multiscale.CoarseToFine``), NaN handling and loss logging
(``callbacks.DivergenceGuard``, ``callbacks.LossLogger``), all three added by ``configure_callbacks``;
resume checks and starting from a checkpoint's image (``resume``); the loss itself (``losses``,
``style_statistics``).

One training step is one forward/backward pass, for Adam and for L-BFGS alike (``max_iter=1``), so
``trainer.max_steps`` counts loss evaluations with either.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from jsonargparse.typing import OpenUnitInterval, PositiveInt
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from nst_lightning.callbacks import DivergenceGuard, LossLogger
from nst_lightning.color import ColorMode, gray, match_color_histogram, match_luminance, with_chroma_of
from nst_lightning.errors import UserError, param
from nst_lightning.iterate_average import IterateAverage
from nst_lightning.losses import LossWeights, batch_losses
from nst_lightning.memory import MIN_AUTO_TILE, MemoryModel, memory_model, plan
from nst_lightning.multiscale import CoarseToFine, check_schedule, stage_sizes
from nst_lightning.option_types import FiniteNonNegativeFloat, FinitePositiveFloat
from nst_lightning.regions import GuidedStatistic, GuidedTarget, MaskMethod, layer_masks
from nst_lightning.resume import check_same_optimizer, load_start_image
from nst_lightning.style_statistics import STYLE_STATISTICS, StyleLossName
from nst_lightning.tiling import TiledLoss, vgg_halo_and_alignment
from nst_lightning.vgg import LayerName, PoolingName, VGG19Features

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
DEFAULT_LR = {"adam": 0.02, "lbfgs": 1.0}
# Lightning warnings that are wrong for an image-as-parameter module, hidden by the CLI and stylize():
# the frozen VGG19 is in eval mode on purpose; the "batches" are step indices, so restarting them on
# resume is exact; a deprecation raised inside Lightning 2.6's own code by torch 2.14 on every run;
# tiled runs (manual optimization) checkpoint the state after each step, as untiled ones do, on purpose.
EXPECTED_WARNINGS = (
    r".*module\(s\) in eval mode.*",
    r".*your dataloader is not resumable.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*Using ModelCheckpoint with manual optimization.*",
)


class NoAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger/litmodels" lines, printed on every run:
    a run's output is the progress bar, this program's own lines and real warnings. Installed on
    Lightning's rank-zero logger by the CLI and ``stylize``."""

    LOGGER = "lightning.pytorch.utilities.rank_zero"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")

    @classmethod
    def install(cls) -> None:
        logger = logging.getLogger(cls.LOGGER)
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())


class StyleTransfer(pl.LightningModule):
    def __init__(
        self,
        weights: str = "IMAGENET1K_V1",
        content_layers: list[LayerName] = ["conv4_2"],
        style_layers: list[LayerName] = DEFAULT_STYLE_LAYERS,
        style_layer_weights: Optional[list[FiniteNonNegativeFloat]] = None,
        content_weight: FiniteNonNegativeFloat = 1.0,
        style_weight: FiniteNonNegativeFloat = 10.0,
        tv_weight: FiniteNonNegativeFloat = 0.0,
        style_loss: StyleLossName = "gram",
        optimizer: Literal["adam", "lbfgs"] = "adam",
        lr: Optional[FinitePositiveFloat] = None,
        lbfgs_history: PositiveInt = 100,
        init: Literal["content", "noise", "image"] = "content",
        init_image: Optional[str] = None,
        pooling: PoolingName = "max",
        preserve_colors: ColorMode = "none",
        stage_steps: Optional[list[PositiveInt]] = None,
        ema_decay: Optional[OpenUnitInterval] = None,
        memory_format: Literal["auto", "channels_last", "contiguous"] = "auto",
        activation_checkpointing: bool = False,
        tile_size: Optional[PositiveInt] = None,
        max_memory_gb: Optional[FinitePositiveFloat] = None,
        check_memory: bool = True,
        region_masks: MaskMethod = "downsample",
    ) -> None:
        """
        Args:
            weights: VGG19 weights: ``IMAGENET1K_V1`` (torchvision, downloaded once), ``random``
                (untrained, for offline tests) or the path of a ``vgg19``/``vgg19().features`` state dict.
            content_layers: Layers whose activations the result must share with the content image.
            style_layers: Layers whose style statistics the result must share with the style image.
            style_layer_weights: One weight per style layer; normalised to sum to 1 (default: equal,
                i.e. 1/5 each as in the paper).
            content_weight: Weight of the content loss (the paper's alpha).
            style_weight: Weight of the style loss (the paper's beta). Losses are normalised, so the
                ratio style/content is meaningful whatever VGG19 weights are used.
            tv_weight: Weight of the total-variation (smoothness) loss; 0 disables it.
            style_loss: What a layer's style is: ``gram`` (the paper's Gram matrices) or ``wasserstein``
                (mean and covariance of the features, compared by the 2-Wasserstein distance between
                Gaussians, as crowsonkb/style-transfer-pytorch does).
            optimizer: ``adam`` (robust, works with mixed precision) or ``lbfgs`` (the paper's).
            lr: Step size; default 0.02 for Adam (in units of the [0, 1] pixel range), 1.0 for L-BFGS.
            lbfgs_history: Number of past updates L-BFGS keeps to approximate curvature.
            init: Start from the ``content`` image (faster, more faithful), from uniform ``noise``
                (the paper's Fig. 2, seeded by ``seed_everything``) or from ``init_image``.
            init_image: With ``init: image``, the image to start from (file, http(s) URL or
                ``builtin:NAME``), resized to the content image's size, e.g. an earlier result; or a
                ``.ckpt`` this program wrote, whose image (its average with ``ema_decay``) then starts a
                new run: step 0, a fresh optimizer, this run's options and inputs.
            pooling: ``max`` (torchvision's VGG19) or ``avg``, the paper's choice ("improves the gradient
                flow and one obtains slightly more appealing results"), with a gain that keeps the
                activations near those the network was trained with (see ``vgg.AVG_POOL_GAIN``).
            preserve_colors: Keep the photo's colours (Gatys et al. 2017): ``luminance`` transfers style
                on luminance only and puts the photo's colour back; ``histogram`` recolours the style
                image to the photo's colour mean and covariance first; ``none`` takes the painting's.
            stage_steps: Coarse-to-fine optimisation: steps of each stage before the last, smallest
                first. Each stage's long side is sqrt(2) times the previous one's, the last stage is
                ``data.image_size`` and gets the rest of ``trainer.max_steps``; e.g. ``[300, 200]`` with
                ``max_steps: 600`` and 1024 px runs 300 steps at 512 px, 200 at 724 and 100 at 1024.
                Default: one stage at the final size (the paper).
            ema_decay: Output the exponential moving average of the iterates with this decay (e.g.
                0.99: about the last 100 steps) instead of the last iterate, which removes Adam's step
                noise; default: off.
            memory_format: Layout of VGG19's activations: ``channels_last`` (NHWC) or ``contiguous``
                (NCHW). ``auto`` picks NHWC on a CPU and on a GPU under mixed precision (where the fast
                kernels want it), NCHW for fp32 on a GPU (docs/performance.md). Same result up to
                float rounding.
            activation_checkpointing: Keep only each VGG19 block's input and the used layers'
                outputs for the backward pass and recompute the rest: less memory for more time per
                step (measured in docs/performance.md), the same result. For sizes that do not fit.
            tile_size: Compute each step in tiles of about this many pixels a side (with a halo of
                VGG19's receptive field around each), so that memory no longer grows with the image but
                with the tile; the gradient is the untiled one up to float rounding (``tiling.py``).
                Default: untiled.
            max_memory_gb: A memory budget (the process's peak resident memory on a CPU, allocated
                GPU memory on a GPU) from which the tile size is chosen, at each coarse-to-fine stage:
                untiled where the whole image fits, else the largest tile that does (``memory.py``).
                Capped by the memory available. Not with ``tile_size``.
            check_memory: Refuse, before anything large is allocated, a run whose estimated memory
                exceeds what the device has available, saying what would fit. ``false`` tries anyway.
            region_masks: With ``data.regions``, how a mask reaches each layer's resolution (Gatys et al.
                2017): ``downsample`` (the mask's average over each position's pixels) or ``propagate``
                (through the network, so that it also covers positions whose receptive field reaches
                into the region); see ``regions.py``.
        """
        super().__init__()
        self.save_hyperparameters()
        # VGG19's weights are frozen and deterministic: kept out of checkpoints (see `state_dict`),
        # so a checkpoint is the image and the optimizer state, and loading may not ask for them.
        self.strict_loading = False
        self.register_load_state_dict_post_hook(_forgive_missing_vgg_weights)
        self.loss_weights = LossWeights.from_options(
            content_layers, style_layers, style_layer_weights, content_weight, style_weight, tv_weight
        )
        self.style_statistic = STYLE_STATISTICS[style_loss]()
        # What the loss uses: the statistic, taking regions' guided targets too (plain ones pass through).
        self.loss_statistic = GuidedStatistic(self.style_statistic)
        if (init == "image") != (init_image is not None):
            raise UserError(
                f"{param('model.init')} image needs {param('model.init_image')} PATH" if init == "image"
                else f"{param('model.init_image')} is set but {param('model.init')} is {init}; add {param('model.init')} image"
            )
        layers = list(content_layers) + list(style_layers)
        self.vgg = VGG19Features(
            layers, weights, pooling=pooling, option=param("model.weights"), activation_checkpointing=activation_checkpointing
        )
        if tile_size is not None and max_memory_gb is not None:
            raise UserError(
                f"{param('model.tile_size')} and {param('model.max_memory_gb')} are both set; give one: "
                "a tile size, or a budget that chooses it"
            )
        # Tiled steps backpropagate tile by tile, which Lightning's manual optimization allows.
        self.automatic_optimization = tile_size is None and max_memory_gb is None
        self.tiled_loss = None
        if not self.automatic_optimization:  # a budget sets the tile size per stage (`plan_memory`)
            self.tiled_loss = TiledLoss(self.vgg, self.loss_weights, self.loss_statistic, tile_size or 0)
            if tile_size is not None and tile_size < self.tiled_loss.align:
                raise UserError(
                    f"{param('model.tile_size')} {tile_size} is below the smallest tile these layers allow, "
                    f"{self.tiled_loss.align} px (tiles are aligned to the deepest layer's stride); give at "
                    f"least {self.tiled_loss.align}, 512 or more for speed, or {param('model.max_memory_gb')} to choose it"
                )
        self._memory_budget: Optional[float] = None  # bytes the run may add, with max_memory_gb
        self._memory_model: Optional[MemoryModel] = None
        self.register_parameter("image", None)  # created in `setup`, once the content image's size is known
        self.average: Optional[IterateAverage] = None  # the averaged iterates (ema_decay), checkpointed
        # Computed once per size (at the start and at each stage change), never per step; not
        # checkpointed: a resume recomputes them from the inputs. One (content features, style
        # statistics) pair per image of the result: several when photos are optimised together.
        self.targets: list[tuple[dict[str, Tensor], dict[str, Any]]] = []
        self.content_colors: Optional[Tensor] = None  # the photo(s) at the current size (luminance mode)
        self._start_image: Optional[Tensor] = None  # init_image, as loaded

    @property
    def content_targets(self) -> dict[str, Tensor]:
        """The (first) image's content features per content layer."""
        return self.targets[0][0] if self.targets else {}

    @property
    def style_targets(self) -> dict[str, Any]:
        """The (first) image's style statistics per style layer, of the style statistic's making."""
        return self.targets[0][1] if self.targets else {}

    def configure_callbacks(self) -> list[pl.Callback]:
        return [DivergenceGuard(), LossLogger(), CoarseToFine(self.hparams.stage_steps or [])]

    # ---- the image parameter and the targets --------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = self._datamodule()
        self.check_inputs(datamodule, self.trainer.max_steps)
        first_size = stage_sizes(datamodule.image_size, len(self.hparams.stage_steps or []) + 1)[0]
        content = datamodule.images(first_size)[0]
        if self.image is None or self.image.shape != content.shape:
            # NCHW whatever the source's strides: L-BFGS flattens the parameter and its gradient.
            self.image = nn.Parameter(self._initial_image(content).contiguous())
            if self.hparams.ema_decay is not None:
                self.average = IterateAverage(self.image, self.hparams.ema_decay)

    def check_inputs(self, datamodule: Any, max_steps: Optional[int], device: Optional[torch.device] = None, precision: Optional[str] = None) -> None:
        """Fail early, with one line, on inputs that would fail mid-run (the CLI calls this before it
        writes any file): unreadable images, a bad stage schedule, an unreadable ``init_image``, a
        size that does not fit in memory (on ``device``, default the Trainer's)."""
        images = len(getattr(datamodule, "contents", [None]))
        if images > 1 and (self.hparams.optimizer == "lbfgs" or self.tiled_loss is not None):
            what = param("model.optimizer") + " lbfgs" if self.hparams.optimizer == "lbfgs" else "tiles"
            raise UserError(
                f"{images} photos optimised together cannot use {what} (L-BFGS's line search and history would couple "
                f"the images; tiles are for one large image); use {param('model.optimizer')} adam, untiled, or one photo at a time"
            )
        # First, from the images' headers: a size that cannot fit is refused before it is decoded.
        self.plan_memory(datamodule, device or self.trainer.strategy.root_device, precision or str(self.trainer.precision))
        datamodule.load()
        check_schedule(self.hparams.stage_steps or [], max_steps, datamodule)
        if self.hparams.init == "image" and self._start_image is None:
            self._start_image = load_start_image(self.hparams.init_image)  # each size resizes it

    def plan_memory(self, datamodule: Any, device: torch.device, precision: str) -> None:
        """Refuse a run that cannot fit (``memory.py``'s estimate against the memory available), or
        with ``max_memory_gb``, set the budget the tile size is chosen from."""
        (height, width), _ = datamodule.header_sizes(datamodule.image_size)
        height *= len(getattr(datamodule, "contents", [None]))  # K images of a batch: K times the pixels
        # The tiles' geometry also for an untiled run, whose refusal may suggest tiles.
        halo, align = vgg_halo_and_alignment(self.vgg, self.vgg.layers)
        self._memory_model = self.memory_model(datamodule, precision)
        self._memory_budget = plan(
            self._memory_model,
            height,
            width,
            device,
            halo=halo,
            align=align,
            tile_size=self.hparams.tile_size,
            max_memory_gb=self.hparams.max_memory_gb,
            check=self.hparams.check_memory,
            bf16_model=None if "16" in precision else self.memory_model(datamodule, "bf16-mixed"),
        )

    def memory_model(self, datamodule: Any, precision: str) -> MemoryModel:
        """``memory.py``'s estimate for this run's options and inputs under ``precision``."""
        content, styles = datamodule.header_sizes(datamodule.image_size)
        return memory_model(
            self.vgg.features,
            [self.vgg.layer_index(n) for n in self.loss_weights.content_layers],
            optimizer=self.hparams.optimizer,
            lbfgs_history=self.hparams.lbfgs_history,
            ema=self.hparams.ema_decay is not None,
            luminance=self.hparams.preserve_colors == "luminance",
            precision=precision,
            activation_checkpointing=self.hparams.activation_checkpointing,
            style_pixel_ratio=sum(map(math.prod, styles)) / math.prod(content),
        )

    def _initial_image(self, content: Tensor) -> Tensor:
        if self.hparams.init == "content":
            return content.clone()
        if self.hparams.init == "noise":
            # Each image of a batch gets the noise it would get alone (the same draw).
            state = torch.get_rng_state()
            noise = []
            for k in range(content.shape[0]):
                torch.set_rng_state(state)
                noise.append(torch.rand_like(content[k : k + 1]))
            return torch.cat(noise)
        # Resized to the content's exact shape: an init image of another aspect is stretched.
        return F.interpolate(self._start_image, size=content.shape[-2:], mode="bicubic", antialias=True).clamp(0, 1)

    def on_fit_start(self) -> None:
        # Here, not in __init__: the layout depends on the device and precision the Trainer chose.
        choice = self.hparams.get("memory_format", "auto")  # absent from checkpoints made before it
        auto = self.device.type == "cpu" or "mixed" in str(self.trainer.precision)
        self.vgg.use_channels_last(auto if choice == "auto" else choice == "channels_last")
        self.refresh_targets()

    def refresh_targets(self) -> None:
        """Targets for the image's current size, from the inputs the datamodule resizes from source."""
        datamodule = self._datamodule()
        if self._memory_budget is not None:
            self._choose_tile_size(*self.image.shape[-2:])
        if getattr(datamodule, "regions", None) is not None:
            long_side = max(self.image.shape[-2:])
            self.compute_region_targets(datamodule.images(long_side)[0], datamodule.region_inputs(long_side))
            return
        members = datamodule.members(max(self.image.shape[-2:])) if hasattr(datamodule, "members") else None
        if members is None:
            content, styles = datamodule.images(max(self.image.shape[-2:]))
            members = [(content, styles, datamodule.style_weights)]
        self.targets = [self._image_targets(content, styles, blend) for content, styles, blend in members]
        self.content_colors = self._colors(torch.cat([content for content, _, _ in members]))

    def _choose_tile_size(self, height: int, width: int) -> None:
        """With ``max_memory_gb``: untiled if this size fits the budget, else the largest tile that does."""
        tiled = self.tiled_loss
        tile = self._memory_model.largest_tile(height, width, self._memory_budget, tiled.halo, tiled.align)
        tiled.tile_size = tile or math.ceil(MIN_AUTO_TILE / tiled.align) * tiled.align
        how = "untiled" if tiled.tile_size >= max(height, width) else f"in tiles of {tiled.tile_size} px"
        rank_zero_info(f"{width}x{height}: {how}, for a memory budget of {self.hparams.max_memory_gb:g} GB")

    def compute_targets(self, content: Tensor, style: Tensor | list[Tensor], blend_weights: Optional[list[float]] = None) -> None:
        """The targets of one photo ``[1, 3, H, W]`` and its painting(s) (``_image_targets``)."""
        self.targets = [self._image_targets(content, style, blend_weights)]
        self.content_colors = self._colors(content)

    def _colors(self, content: Tensor) -> Optional[Tensor]:
        # Kept only where the result needs it: a whole-image tensor of 12 bytes a pixel.
        return content.to(self.device, torch.float32) if self.hparams.preserve_colors == "luminance" else None

    @torch.no_grad()
    def _image_targets(self, content: Tensor, style: Tensor | list[Tensor], blend_weights: Optional[list[float]] = None) -> tuple[dict, dict]:
        """Content features and blended style statistics of one photo ``[1, 3, H, W]``, in fp32
        (outside autocast) for exact targets. Colour preservation transforms the inputs first."""
        content = content.to(self.device, torch.float32)
        styles = [self._as_painting(s, content) for s in ([style] if isinstance(style, Tensor) else style)]
        content = self._as_photo(content)
        statistic, content_layers, style_layers = self.style_statistic, self.loss_weights.content_layers, self.loss_weights.style_layers
        with torch.autocast(device_type=self.device.type, enabled=False):
            content_targets = self._measure(content, content_layers, [])[0]
            # One style image at a time: a blend of large paintings stays small in memory.
            per_style = [self._measure(s, [], style_layers)[1] for s in styles]
        blend = blend_weights or [1.0 / len(styles)] * len(styles)
        return content_targets, {n: statistic.blend([t[n] for t in per_style], blend) for n in style_layers}

    def _as_photo(self, content: Tensor) -> Tensor:
        """What VGG19 sees of the photo: its luminance, as grey, with ``preserve_colors: luminance``."""
        return gray(content) if self.hparams.preserve_colors == "luminance" else content

    def _as_painting(self, style: Tensor, content: Tensor) -> Tensor:
        """A painting as its statistics are taken: matched to the photo's luminance or colours
        (Gatys et al. 2017) with ``preserve_colors``, else as it is; in fp32 on this device."""
        style = style.to(self.device, torch.float32)
        if self.hparams.preserve_colors == "luminance":
            return match_luminance(style, content)
        return match_color_histogram(style, content) if self.hparams.preserve_colors == "histogram" else style

    @torch.no_grad()
    def compute_region_targets(self, content: Tensor, regions: list[dict[str, Any]]) -> None:
        """Content features, and per style layer a ``GuidedTarget``: each region's (blended) style
        statistic, from its paintings inside their style masks, with the region's mask at that
        layer and its share of the loss (Gatys et al. 2017, Sec. 4). Colour preservation as in
        ``compute_targets``. ``regions``: ``StyleTransferData.region_inputs``."""
        content = content.to(self.device, torch.float32)
        statistic = self.style_statistic
        self.content_colors = self._colors(content)
        style_layers = self.loss_weights.style_layers
        indices = {name: self.vgg.layer_index(name) for name in style_layers}

        def at_layers(mask: Optional[Tensor]) -> dict[str, Optional[Tensor]]:
            if mask is None:
                return dict.fromkeys(style_layers)
            return layer_masks(mask.to(self.device), self.vgg.features, indices, self.hparams.region_masks)

        parts: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in style_layers}
        with torch.autocast(device_type=self.device.type, enabled=False):
            content_targets = self._measure(self._as_photo(content), self.loss_weights.content_layers, [])[0]
            for region in regions:
                per_style = []
                for image, style_mask in zip(region["styles"], region["style_masks"]):
                    per_style.append(self._measure(self._as_painting(image, content), [], style_layers, at_layers(style_mask))[1])
                masks = at_layers(region["mask"])
                for name in style_layers:
                    parts[name][0].append(statistic.blend([t[name] for t in per_style], region["blend"]))
                    parts[name][1].append(masks[name])
                    parts[name][2].append(region["share"])
        self.targets = [(content_targets, {name: GuidedTarget(*parts[name]) for name in style_layers})]

    def _measure(self, image: Tensor, content_layers: Any, style_layers: Any, masks: Optional[dict] = None) -> tuple[dict, dict]:
        """Features of ``content_layers`` and style statistics of ``style_layers`` (weighted by
        ``masks``, per layer, where given); tiled if tiling."""
        masks = masks or {}
        if self.tiled_loss is not None:
            return self.tiled_loss.measure(image, content_layers, style_layers, masks)
        features = self.vgg(image)
        return {n: features[n].float() for n in content_layers}, {n: self.style_statistic.target(features[n], masks.get(n)) for n in style_layers}

    def _datamodule(self) -> Any:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "images"):
            raise UserError("StyleTransfer needs a StyleTransferData datamodule: trainer.fit(model, datamodule=...)")
        return datamodule

    def result(self, image: Optional[Tensor] = None) -> Tensor:
        """The output image ``[1, 3, H, W]`` (``[K, 3, H, W]`` for K photos) in [0, 1]: the averaged iterates if ``ema_decay`` is set,
        else the image (or ``image``, e.g. the last finite one); with ``preserve_colors: luminance``,
        its luminance in the photo's colours."""
        if image is not None:
            image = image.detach().float()
        elif self.average is not None and self.average.count.item() > 0:
            image = self.average.get()
        else:
            image = self.image.detach().float()
        if self.hparams.preserve_colors == "luminance" and self.content_colors is not None:
            image = with_chroma_of(image, self.content_colors.to(image.device))
        return image.clamp(0, 1)

    # ---- the loss and the optimisation -------------------------------------------------------

    def forward(self, image: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The weighted total ``loss`` and its parts for ``image`` (default: the generated image)."""
        image = self.image if image is None else image
        features = self.vgg(self._vgg_input(image))
        return batch_losses(features, image, self.targets, self.loss_weights, self.loss_statistic)

    def _vgg_input(self, image: Tensor) -> Tensor:
        # Luminance-only transfer (Gatys et al. 2017): VGG19 sees the luminance as a grey image.
        return gray(image) if self.hparams.preserve_colors == "luminance" else image

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        if self.automatic_optimization:
            return self()  # "loss" is optimised; LossLogger logs it and its parts
        optimizer, losses = self.optimizers(), {}

        def closure() -> Tensor:  # evaluated once per step by Adam and by L-BFGS (max_iter=1) alike
            optimizer.zero_grad()
            targets = (self.image, self.content_targets, self.style_targets)
            losses.update(self.tiled_loss.losses_and_backward(*targets, self.manual_backward, self._vgg_input))
            return losses["loss"]

        optimizer.step(closure=closure)
        self._after_step()
        return losses

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = self.hparams.lr or DEFAULT_LR[self.hparams.optimizer]
        if self.hparams.optimizer == "lbfgs":
            # max_iter=1: one Lightning step is one evaluation, so max_steps, logging and checkpoint
            # intervals mean the same thing as with Adam. L-BFGS keeps its history across steps.
            return torch.optim.LBFGS([self.image], lr=lr, max_iter=1, history_size=self.hparams.lbfgs_history)
        return torch.optim.Adam([self.image], lr=lr)

    def on_after_backward(self) -> None:
        # Under autocast the image's gradient can come back in a non-contiguous (channels-last)
        # layout, which L-BFGS's flat view of the gradient cannot take.
        if self.image.grad is not None and not self.image.grad.is_contiguous():
            self.image.grad = self.image.grad.contiguous()

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self._after_step()

    def _after_step(self) -> None:
        if self.hparams.optimizer == "adam":
            # Keep pixels valid after each Adam step (before any checkpoint sees them). Not for L-BFGS,
            # whose curvature estimate a projection would corrupt; its output is clamped when saved.
            with torch.no_grad():
                self.image.clamp_(0, 1)
        if self.average is not None:
            self.average.update(self.image)

    # ---- checkpoints hold the image and the optimizer state, not the frozen VGG19 ---------------

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)
        for key in [key for key in state if key.startswith("vgg.")]:
            del state[key]
        return state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_same_optimizer(checkpoint, self.hparams.optimizer)
        state = checkpoint["state_dict"]
        if not isinstance(state.get("image"), Tensor):
            raise UserError(f"{param('ckpt_path')}: the checkpoint holds no image; give a .ckpt this program wrote")
        # The parameter (and the average) take the saved shape (that of the checkpoint's stage, which
        # CoarseToFine checks) before the state dict and the optimizer state are loaded into them.
        if self.image is None:  # e.g. StyleTransfer.load_from_checkpoint(path): no setup has run
            self.image = nn.Parameter(torch.empty_like(state["image"]))
        else:
            self.image.data = torch.empty_like(state["image"])
        if "average.value" in state:
            if self.average is None:
                self.average = IterateAverage(state["average.value"], self.hparams.ema_decay or 0.99)
            self.average.value = torch.empty_like(state["average.value"])


def _forgive_missing_vgg_weights(module: nn.Module, incompatible_keys: Any) -> None:
    """Loading a checkpoint (which never holds VGG19's frozen weights) leaves them as they are; so that
    ``load_from_checkpoint`` does not warn about each of them, they are not reported as missing."""
    incompatible_keys.missing_keys[:] = [key for key in incompatible_keys.missing_keys if not key.startswith("vgg.")]
