"""Gatys et al. (2015) style transfer as a LightningModule whose only parameter is the image.

The Trainer does the rest: device placement, mixed precision, checkpoints (image + optimizer state,
not the frozen VGG19) and logging. One training step is one forward/backward pass, for Adam and for
L-BFGS alike (``max_iter=1``), so ``trainer.max_steps`` counts loss evaluations with either.

A non-finite loss or image stops training at once (``NonFiniteLossError``) before the optimizer or a
checkpoint can spread it; the module keeps the last image whose loss was finite for the callbacks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt, restricted_number_type
from torch import Tensor, nn

from nst_lightning.checkpoint_io import load_checkpoint_file
from nst_lightning.errors import NonFiniteLossError, UserError
from nst_lightning.image_io import load_image
from nst_lightning.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from nst_lightning.vgg import LayerName, VGG19Features

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
DEFAULT_LR = {"adam": 0.02, "lbfgs": 1.0}

# jsonargparse's NonNegativeFloat and PositiveFloat accept "inf", which makes every loss infinite;
# these reject it (and NaN) when the options are parsed.
FiniteNonNegativeFloat = restricted_number_type(
    "FiniteNonNegativeFloat", float, [(">=", 0), ("<", math.inf)], docstring="a finite float >= 0"
)
FinitePositiveFloat = restricted_number_type(
    "FinitePositiveFloat", float, [(">", 0), ("<", math.inf)], docstring="a finite float > 0"
)


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
        init: Literal["content", "noise"] = "content",
        init_image: Optional[str] = None,
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
            init: Start from the ``content`` image (faster, more faithful) or from uniform ``noise``
                (the paper's Fig. 2, seeded by ``seed_everything``).
            init_image: Start from this picture instead (``init`` is then unused): an image file, http(s)
                URL or ``builtin:NAME``, or a ``.ckpt`` of an earlier run, whose image then starts a new
                run (step 0, fresh optimizer, this run's options and inputs). Resized to the result's size.
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
        self.vgg = VGG19Features(list(content_layers) + list(style_layers), weights)
        # The generated image, created in `setup` once the content image's size is known.
        self.register_parameter("image", None)
        # Targets are computed once per run (in `on_fit_start`, on the right device), never per step,
        # and are not checkpointed: a resume recomputes them from the inputs.
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}
        # The last image whose loss was finite and its step, written out if the run diverges.
        self.last_finite_image: Optional[Tensor] = None
        self.last_finite_step: Optional[int] = None

    # ---- the image parameter and the targets --------------------------------------------------

    def setup(self, stage: str) -> None:
        content = self._datamodule_images()[0]
        if self.image is None or self.image.shape != content.shape:
            self.image = nn.Parameter(self.initial_image(content))

    def initial_image(self, content: Tensor) -> Tensor:
        """Where the optimisation starts (a resume then overwrites it with the checkpoint's image)."""
        source = self.hparams.get("init_image")
        if source is None:
            return content.clone() if self.hparams.init == "content" else torch.rand_like(content)
        option = "--model.init_image"
        if Path(source).suffix == ".ckpt":
            image = load_checkpoint_file(source, option=option)["state_dict"].get("image")
            if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
                raise UserError(f"{option}: {source} holds no image of this program; give a .ckpt it wrote, or an image")
            # L-BFGS images are unclamped, and a diverged one may hold NaN: start only from valid pixels.
            image = torch.nan_to_num(image.detach().float(), nan=0.5).clamp(0, 1)
        else:
            image = load_image(source, max(content.shape[-2:]), option=option)
        if image.shape[-2:] != content.shape[-2:]:
            image = F.interpolate(image, size=content.shape[-2:], mode="bicubic", antialias=True, align_corners=False)
        return image.clamp(0, 1).to(content.dtype)

    def on_fit_start(self) -> None:
        self.compute_targets(*self._datamodule_images())

    @torch.no_grad()
    def compute_targets(self, content: Tensor, style: Tensor) -> None:
        """Content features and style Grams, in fp32 (outside autocast) for exact targets."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            content_features = self.vgg(content.to(self.device, torch.float32))
            style_features = self.vgg(style.to(self.device, torch.float32))
        self.content_targets = {name: content_features[name].float() for name in self.hparams.content_layers}
        self.style_targets = {name: gram_matrix(style_features[name]) for name in self.hparams.style_layers}

    def _datamodule_images(self) -> tuple[Tensor, Tensor]:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "load"):
            raise UserError("StyleTransfer needs a StyleTransferData datamodule: trainer.fit(model, datamodule=...)")
        datamodule.load()
        return datamodule.content_image, datamodule.style_image

    # ---- losses and optimisation -------------------------------------------------------------

    def forward(self, image: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The weighted total ``loss`` and its parts for ``image`` (default: the generated image)."""
        image = self.image if image is None else image
        features = self.vgg(image)
        hp = self.hparams
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
        self.last_finite_image = self.image.detach().clone()
        self.last_finite_step = self.trainer.global_step
        self.log("train/loss", losses["loss"], prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"})
        return losses["loss"]

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
        if not torch.isfinite(self.image).all().item():  # before the checkpoint of this step sees it
            raise self._diverged("the image became non-finite", self.trainer.global_step + 1)
        if self.hparams.optimizer == "adam":
            # Keep pixels valid after each Adam step (before any checkpoint sees them). Not for L-BFGS,
            # whose curvature estimate a projection would corrupt; its output is clamped when saved.
            with torch.no_grad():
                self.image.clamp_(0, 1)

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

    def check_resume(self, checkpoint: dict[str, Any], datamodule: Any, name: str = "the checkpoint") -> None:
        """Refuse to resume from ``checkpoint`` if it was made for other inputs (see
        ``StyleTransferData.check_resume``) or with the other optimizer, whose state it cannot use."""
        if datamodule is not None and hasattr(datamodule, "check_resume"):
            datamodule.check_resume(checkpoint.get(type(datamodule).__qualname__, {}).get("fingerprint"), name)
        saved = checkpoint.get("hyper_parameters", {}).get("optimizer")
        if saved is not None and saved != self.hparams.optimizer:
            raise UserError(
                f"--model.optimizer is {self.hparams.optimizer} but {name} was made with {saved}, whose state "
                f"{self.hparams.optimizer} cannot continue; resume with --model.optimizer {saved}, or start a "
                f"new run from the checkpoint's image with --model.init_image {name}"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:  # resuming a run (not load_from_checkpoint)
            self.check_resume(checkpoint, getattr(self._trainer, "datamodule", None))
        state = checkpoint["state_dict"]
        saved = state.get("image")
        if saved is not None:
            if self.image is None:  # e.g. StyleTransfer.load_from_checkpoint(path): no setup has run
                self.image = nn.Parameter(torch.empty_like(saved))
            elif self.image.shape != saved.shape:
                raise UserError(
                    f"the checkpoint's image is {saved.shape[-1]}x{saved.shape[-2]} but the inputs give "
                    f"{self.image.shape[-1]}x{self.image.shape[-2]}; resume with the same --data options "
                    "or start a new run"
                )
        # Put the (deterministic, frozen) VGG weights back so that the strict state-dict load passes.
        state.update({k: v for k, v in self.state_dict().items() if k.startswith("vgg.")})
