"""Gatys et al. (2015) style transfer as a LightningModule whose only parameter is the image.

The Trainer does the rest: device placement, mixed precision, checkpoints (image + optimizer state,
not the frozen VGG19) and logging. One training step is one forward/backward pass, for Adam and for
L-BFGS alike (``max_iter=1``), so ``trainer.max_steps`` counts loss evaluations with either.

A non-finite loss stops training at once (``NonFiniteLossError``) before the optimizer can spread it
(one host-device sync per step, the only one this module adds); a non-finite image is refused when a
checkpoint or the result is written. The module keeps the last image whose loss was finite for the
callbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from jsonargparse.typing import OpenUnitInterval, PositiveInt
from torch import Tensor, nn

from nst_lightning.checkpoint_io import load_checkpoint_file
from nst_lightning.color import ColorMode, gray, match_color_histogram, match_luminance, with_chroma_of
from nst_lightning.ema import IterateAverage
from nst_lightning.errors import NonFiniteLossError, UserError
from nst_lightning.image_io import load_image
from nst_lightning.numbers import FiniteNonNegativeFloat, FinitePositiveFloat
from nst_lightning.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from nst_lightning.schedule import resize_adam_state, resize_image, stage_of_step, stage_sizes
from nst_lightning.vgg import LayerName, PoolingName, VGG19Features

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
DEFAULT_LR = {"adam": 0.02, "lbfgs": 1.0}


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
    ) -> None:
        """
        Args:
            weights: VGG19 weights: ``IMAGENET1K_V1`` (torchvision, downloaded once), ``random``
                (untrained, for offline tests) or the path of a ``vgg19``/``vgg19().features`` state dict.
            content_layers: Layers whose activations the result must share with the content image.
            style_layers: Layers whose Gram matrices the result must share with the style image.
            style_layer_weights: One weight per style layer; normalised to sum to 1 (default: equal,
                i.e. 1/5 each as in the paper).
            content_weight: Weight of the content loss (the paper's alpha).
            style_weight: Weight of the style loss (the paper's beta). Losses are normalised, so the
                ratio style/content is meaningful whatever VGG19 weights are used.
            tv_weight: Weight of the total-variation (smoothness) loss; 0 disables it.
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
                (NCHW). ``auto`` picks NHWC on a CPU (measured neutral in fp32 and 5-9% faster under
                bf16-mixed with oneDNN, docs/performance.md) and on a GPU under mixed precision
                (tensor-core kernels want it), NCHW for fp32 on a GPU. Same result up to float rounding.
        """
        super().__init__()
        self.save_hyperparameters()
        if not content_layers and not style_layers:
            raise UserError("--model.content_layers and --model.style_layers are both empty; name at least one layer")
        if style_layer_weights is not None and len(style_layer_weights) != len(style_layers):
            raise UserError(
                f"--model.style_layer_weights has {len(style_layer_weights)} values for "
                f"{len(style_layers)} style layers; give one weight per layer"
            )
        layer_weights = torch.tensor(style_layer_weights or [1.0] * len(style_layers), dtype=torch.float32)
        if style_layers and layer_weights.sum() <= 0:
            raise UserError("--model.style_layer_weights are all zero; give at least one positive weight")
        if content_weight == 0 and style_weight == 0 and tv_weight == 0:
            raise UserError(
                "--model.content_weight, --model.style_weight and --model.tv_weight are all 0, so there is "
                "nothing to optimise; give --model.style_weight (or another weight) a positive value"
            )
        self.style_layer_weights = dict(zip(style_layers, (layer_weights / layer_weights.sum()).tolist()))
        if (init == "image") != (init_image is not None):
            raise UserError(
                "--model.init image needs --model.init_image PATH" if init == "image"
                else f"--model.init_image is set but --model.init is {init}; add --model.init image"
            )
        self.vgg = VGG19Features(list(content_layers) + list(style_layers), weights, pooling=pooling)
        # The generated image, created in `setup` once the content image's size is known.
        self.register_parameter("image", None)
        # The averaged iterates (ema_decay), created with the image; checkpointed with it.
        self.average: Optional[IterateAverage] = None
        # The multi-scale stage (0 = smallest); checkpointed, so a resume continues at the right size.
        self.stage = 0
        # Targets are computed once per stage (in `on_fit_start` and at each stage change, on the right
        # device), never per step, and are not checkpointed: a resume recomputes them from the inputs.
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}
        # The photo at the current size, whose colours luminance-only transfer puts back.
        self.content_colors: Optional[Tensor] = None
        self._init_image: Optional[Tensor] = None
        # The last image whose loss was finite and its step, written out if the run diverges.
        self.last_finite_image: Optional[Tensor] = None
        self.last_finite_step: Optional[int] = None

    # ---- the image parameter and the targets --------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = self._datamodule()
        self.check_run(datamodule, self.trainer.max_steps)
        content = self._stage_images(self.stage)[0]
        if self.image is None or self.image.shape != content.shape:
            # NCHW whatever the source's strides (a decoded image is HWC in memory): L-BFGS flattens the
            # parameter and its gradient with .view(-1), and VGG19's layout is chosen separately.
            self.image = nn.Parameter(self._initial_image(content).contiguous())
            if self.hparams.ema_decay is not None:
                self.average = IterateAverage(self.image, self.hparams.ema_decay)

    def check_run(self, datamodule: Any, max_steps: Optional[int]) -> None:
        """Fail early, with one line, on inputs that would fail mid-run (the CLI calls this before it
        writes any file): a schedule with no steps left for the final size, a stage too small for
        VGG19, an unreadable ``init_image``."""
        stage_steps = self.hparams.stage_steps or []
        if max_steps is not None and max_steps >= 0 and sum(stage_steps) >= max_steps:
            raise UserError(
                f"--model.stage_steps add up to {sum(stage_steps)} steps, leaving none of --trainer.max_steps "
                f"{max_steps} for the final size; raise --trainer.max_steps or lower --model.stage_steps"
            )
        datamodule.load()
        for size in self.stage_sizes(datamodule.image_size):
            datamodule.images(size)
        if self.hparams.init == "image" and self._init_image is None:
            # As it is; each stage resizes it to its content image's shape.
            self._init_image = load_init_image(self.hparams.init_image)

    def stage_sizes(self, image_size: int) -> list[int]:
        return stage_sizes(image_size, len(self.hparams.stage_steps or []) + 1)

    def _initial_image(self, content: Tensor) -> Tensor:
        if self.hparams.init == "content":
            return content.clone()
        if self.hparams.init == "noise":
            return torch.rand_like(content)
        # Resized to the content's exact shape: an init image of another aspect is stretched.
        image = F.interpolate(self._init_image, size=content.shape[-2:], mode="bicubic", antialias=True)
        return image.clamp(0, 1)

    def on_fit_start(self) -> None:
        # Here, not in __init__: the layout depends on the device and precision the Trainer chose.
        self.vgg.use_channels_last(self.wants_channels_last())
        self.compute_stage_targets()

    def wants_channels_last(self) -> bool:
        choice = self.hparams.get("memory_format", "auto")  # absent from checkpoints made before it
        if choice != "auto":
            return choice == "channels_last"
        return self.device.type == "cpu" or "mixed" in str(self.trainer.precision)

    def compute_stage_targets(self) -> None:
        """Targets for the current stage's size, from the images the datamodule resizes from source."""
        content, styles = self._stage_images(self.stage)
        self.compute_targets(content, styles, self._datamodule().style_weights)

    @torch.no_grad()
    def compute_targets(self, content: Tensor, style: Tensor | list[Tensor], style_weights: Optional[list[float]] = None) -> None:
        """Content features and style Grams, in fp32 (outside autocast) for exact targets.

        Several style images give the weighted sum of their Grams (``style_weights``, default equal),
        as jcjohnson/neural-style blends styles. Colour preservation transforms the inputs first.
        """
        styles = [style] if isinstance(style, Tensor) else list(style)
        weights = style_weights or [1.0 / len(styles)] * len(styles)
        content = content.to(self.device, torch.float32)
        styles = [s.to(self.device, torch.float32) for s in styles]
        self.content_colors = content
        if self.hparams.preserve_colors == "luminance":
            styles = [match_luminance(s, content) for s in styles]
            content = gray(content)
        elif self.hparams.preserve_colors == "histogram":
            styles = [match_color_histogram(s, content) for s in styles]
        with torch.autocast(device_type=self.device.type, enabled=False):
            content_features = self.vgg(content)
            self.content_targets = {name: content_features[name].float() for name in self.hparams.content_layers}
            self.style_targets = {}
            for weight, image in zip(weights, styles):
                features = self.vgg(image)
                for name in self.hparams.style_layers:
                    gram = weight * gram_matrix(features[name])
                    self.style_targets[name] = self.style_targets[name] + gram if name in self.style_targets else gram

    def _datamodule(self) -> Any:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "images"):
            raise UserError("StyleTransfer needs a StyleTransferData datamodule: trainer.fit(model, datamodule=...)")
        return datamodule

    def _stage_images(self, stage: int) -> tuple[Tensor, list[Tensor]]:
        datamodule = self._datamodule()
        return datamodule.images(self.stage_sizes(datamodule.image_size)[stage])

    def result(self, image: Optional[Tensor] = None) -> Tensor:
        """The output image ``[1, 3, H, W]`` in [0, 1]: the averaged iterates if ``ema_decay`` is set,
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

    # ---- coarse-to-fine stages -----------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        target = stage_of_step(self.trainer.global_step, self.hparams.stage_steps or [])
        while self.stage < target:
            self._next_stage()

    @torch.no_grad()
    def _next_stage(self) -> None:
        """Upscale the image (in place, so the optimizer keeps its reference), its average and the
        optimizer state to the next stage's size, and recompute the targets there."""
        self.stage += 1
        content = self._stage_images(self.stage)[0]
        size = tuple(content.shape[-2:])
        pixel_ratio = (size[0] * size[1]) / (self.image.shape[-2] * self.image.shape[-1])
        # Like crowsonkb's, a new stage starts from the averaged iterate when there is one: the noise
        # of the last Adam steps would otherwise be upscaled into blobs.
        start = self.average.get() if self.average is not None and self.average.count.item() > 0 else self.image
        self.image.data = resize_image(start.to(self.image.dtype), size)
        if self.average is not None:
            self.average.resize(size)
        for optimizer in self.trainer.optimizers:
            if isinstance(optimizer, torch.optim.LBFGS):
                # L-BFGS's history is a set of flat vectors of the old size: no meaningful upscaling;
                # it restarts (as a stage of jcjohnson's multires script restarts its L-BFGS).
                optimizer.state.clear()
                optimizer._numel_cache = None  # cached parameter size, read by its flat views
            elif self.image in optimizer.state:
                resize_adam_state(optimizer.state[self.image], size, pixel_ratio)
        self.compute_stage_targets()

    # ---- losses and optimisation -------------------------------------------------------------

    def forward(self, image: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The weighted total ``loss`` and its parts for ``image`` (default: the generated image)."""
        image = self.image if image is None else image
        hp = self.hparams
        # Luminance-only transfer (Gatys et al. 2017): VGG19 sees the luminance as a grey image.
        features = self.vgg(gray(image) if hp.preserve_colors == "luminance" else image)
        zero = image.new_zeros((), dtype=torch.float32)
        content = sum((content_loss(features[n], self.content_targets[n]) for n in hp.content_layers), zero)
        content = content / max(len(hp.content_layers), 1)
        per_layer = {n: style_loss(features[n], self.style_targets[n]) for n in hp.style_layers}
        style = sum((self.style_layer_weights[n] * loss for n, loss in per_layer.items()), zero)
        tv = total_variation_loss(image) if hp.tv_weight > 0 else zero
        total = hp.content_weight * content + hp.style_weight * style + hp.tv_weight * tv
        losses = {"loss": total, "content_loss": content, "style_loss": style, "tv_loss": tv}
        losses.update({f"style_loss/{n}": loss for n, loss in per_layer.items()})
        return losses

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        losses = self()
        # One host-device sync per step: cheap next to VGG19's forward and backward, and a NaN must
        # not reach the optimizer (Adam's moments, L-BFGS's history) or a checkpoint.
        if not torch.isfinite(losses["loss"]).item():
            raise self._diverged(f"the loss became {losses['loss'].item()}", self.trainer.global_step)
        # Copied into one buffer (no allocation per step; a new one when a stage changes the size).
        if self.last_finite_image is None or self.last_finite_image.shape != self.image.shape:
            self.last_finite_image = self.image.detach().clone()
        else:
            self.last_finite_image.copy_(self.image.detach())
        self.last_finite_step = self.trainer.global_step
        self.log("train/loss", losses["loss"], prog_bar=True)  # every step: the progress bar shows it
        if self._logger_writes_this_step():
            self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"})
            if self.hparams.stage_steps:
                self.log("train/stage", float(self.stage))
        return losses["loss"]

    def _logger_writes_this_step(self) -> bool:
        """Whether the Trainer writes this step's metrics to the logger: when (step + 1) is a multiple
        of ``log_every_n_steps`` (Lightning's ``should_update_logs``). The other scalars are logged only
        then: each ``self.log`` call costs ~0.1 ms of Python (cProfile: 9 calls were most of Lightning's
        per-step time), noise next to a CPU step but a real share of a millisecond GPU step."""
        every = self.trainer.log_every_n_steps
        return every > 0 and ((self.trainer.global_step + 1) % every == 0 or self.trainer.should_stop)

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
        if self.hparams.optimizer == "adam":
            # Keep pixels valid after each Adam step (before any checkpoint sees them). Not for L-BFGS,
            # whose curvature estimate a projection would corrupt; its output is clamped when saved.
            with torch.no_grad():
                self.image.clamp_(0, 1)
        if self.average is not None:
            self.average.update(self.image)

    def check_finite_image(self) -> None:
        """Raise ``NonFiniteLossError`` if the image (or its average) holds NaN or inf. Called before a
        checkpoint or the result is written, not every step: an update that made the image non-finite
        makes the next loss non-finite, which the per-step check catches."""
        if not self.image_is_finite():
            raise self._diverged("the image became non-finite", self.trainer.global_step)

    def image_is_finite(self) -> bool:
        images = [self.image] + ([self.average.value] if self.average is not None else [])
        return all(bool(torch.isfinite(image).all().item()) for image in images)

    def _diverged(self, what: str, step: int) -> NonFiniteLossError:
        """The error for a non-finite loss or image, naming the likely causes and their options."""
        hp = self.hparams
        lr = hp.lr or DEFAULT_LR[hp.optimizer]
        precision = str(self.trainer.precision)
        fixes = f"a lower --model.lr (it is {lr:g})"
        if hp.optimizer == "lbfgs":
            fixes += " or --model.optimizer adam"
        if precision not in ("32", "32-true", "64", "64-true"):
            fixes += f" or --trainer.precision 32 (it is {precision}, which can overflow)"
        return NonFiniteLossError(
            f"{what} after {step} step{'' if step == 1 else 's'}: the optimisation diverged; "
            f"start again with {fixes}",
            step,
        )

    # ---- checkpoints hold the image and the optimizer state, not the frozen VGG19 ---------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("vgg.")]:
            del state[key]
        checkpoint["nst_stage"] = self.stage
        # Part of the inputs' fingerprint (the datamodule stores the rest): the stage sizes follow
        # from it, so a state made for one schedule cannot continue another.
        checkpoint["nst_stage_steps"] = list(self.hparams.stage_steps or [])
        if self.image is not None:
            self.check_finite_image()  # a NaN image must never replace the last good checkpoint

    def check_resume(self, checkpoint: dict[str, Any], datamodule: Any, name: str = "the checkpoint") -> None:
        """Refuse to resume from ``checkpoint`` if it was made for other inputs (see
        ``StyleTransferData.check_resume``), another stage schedule or the other optimizer, whose
        state it cannot use. (The CLI restores the model's options from the checkpoint, so the last
        two matter to API users.)"""
        new_run = f"or start a new run from its image with --model.init image --model.init_image {name}"
        if datamodule is not None and hasattr(datamodule, "check_resume"):
            datamodule.check_resume(checkpoint.get(type(datamodule).__qualname__, {}).get("fingerprint"), name)
        saved_steps = checkpoint.get("nst_stage_steps")
        if saved_steps is not None and list(saved_steps) != list(self.hparams.stage_steps or []):
            raise UserError(
                f"--model.stage_steps is {list(self.hparams.stage_steps or [])} but {name} was made with "
                f"{list(saved_steps)}; resume with the same schedule, {new_run}"
            )
        saved = checkpoint.get("hyper_parameters", {}).get("optimizer")
        if saved is not None and saved != self.hparams.optimizer:
            raise UserError(
                f"--model.optimizer is {self.hparams.optimizer} but {name} was made with {saved}, whose state "
                f"{self.hparams.optimizer} cannot continue; resume with --model.optimizer {saved}, {new_run}"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:  # resuming a run (not load_from_checkpoint)
            self.check_resume(checkpoint, getattr(self._trainer, "datamodule", None))
        state = checkpoint["state_dict"]
        saved = state.get("image")
        stage = checkpoint.get("nst_stage", 0)
        if saved is not None:
            if self.image is None:  # e.g. StyleTransfer.load_from_checkpoint(path): no setup has run
                self.image = nn.Parameter(torch.empty_like(saved))
            else:
                # A resume mid-schedule: the checkpoint's stage decides the size; the parameter (and the
                # average) take that shape before the state dict and the optimizer state are loaded.
                sizes = self.stage_sizes(self._datamodule().image_size)
                expected = self._stage_images(stage)[0].shape if stage < len(sizes) else None
                if expected != saved.shape:
                    raise UserError(
                        f"the checkpoint's image is {saved.shape[-1]}x{saved.shape[-2]} (stage {stage}) but the "
                        "inputs and --model.stage_steps give another size; resume with the same --data options, "
                        "or start a new run from its image with --model.init image --model.init_image CKPT"
                    )
                self.image.data = torch.empty_like(saved)
            if "average.value" in state:
                if self.average is None:
                    self.average = IterateAverage(saved, self.hparams.ema_decay or 0.99)
                self.average.value = torch.empty_like(state["average.value"])
        self.stage = stage
        # Put the (deterministic, frozen) VGG weights back so that the strict state-dict load passes.
        state.update({k: v for k, v in self.state_dict().items() if k.startswith("vgg.")})


def load_init_image(source: str) -> Tensor:
    """``--model.init_image``: an image (file, URL, ``builtin:``), or the
    image of a ``.ckpt`` this program wrote (loaded with ``weights_only``): its averaged iterate when
    it has one (that is its output), else its image, with non-finite pixels replaced."""
    option = "--model.init_image"
    if Path(source).suffix != ".ckpt":
        return load_image(source, option=option)
    checkpoint = load_checkpoint_file(source, option=option)
    state = checkpoint["state_dict"]
    image = state.get("image")
    if not isinstance(image, Tensor) or image.dim() != 4 or tuple(image.shape[:2]) != (1, 3):
        raise UserError(f"{option}: {source} holds no image of this program; give a .ckpt it wrote, or an image")
    decay = checkpoint.get("hyper_parameters", {}).get("ema_decay")
    count = state.get("average.count")
    if decay and isinstance(count, Tensor) and count.item() > 0 and "average.value" in state:
        image = state["average.value"] / (1 - decay ** count.item())
    # L-BFGS images are unclamped, and a diverged one may hold NaN: start only from valid pixels.
    return torch.nan_to_num(image.detach().float(), nan=0.5, posinf=1.0, neginf=0.0).clamp(0, 1)
