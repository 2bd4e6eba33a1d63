"""Gatys et al. (2015) style transfer as a LightningModule whose only parameter is the image.

The Trainer does the rest: device placement, mixed precision, checkpoints (image + optimizer state,
not the frozen VGG19) and logging. One training step is one forward/backward pass, for Adam and for
L-BFGS alike (``max_iter=1``), so ``trainer.max_steps`` counts loss evaluations with either.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor, nn

from nst_lightning.errors import UserError
from nst_lightning.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from nst_lightning.vgg import LayerName, VGG19Features

DEFAULT_STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
DEFAULT_LR = {"adam": 0.02, "lbfgs": 1.0}


class StyleTransfer(pl.LightningModule):
    def __init__(
        self,
        weights: str = "IMAGENET1K_V1",
        content_layers: list[LayerName] = ["conv4_2"],
        style_layers: list[LayerName] = DEFAULT_STYLE_LAYERS,
        style_layer_weights: Optional[list[NonNegativeFloat]] = None,
        content_weight: NonNegativeFloat = 1.0,
        style_weight: NonNegativeFloat = 10.0,
        tv_weight: NonNegativeFloat = 0.0,
        optimizer: Literal["adam", "lbfgs"] = "adam",
        lr: Optional[PositiveFloat] = None,
        lbfgs_history: PositiveInt = 100,
        init: Literal["content", "noise"] = "content",
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
        self.style_layer_weights = dict(zip(style_layers, (layer_weights / layer_weights.sum()).tolist()))
        self.vgg = VGG19Features(list(content_layers) + list(style_layers), weights)
        # The generated image, created in `setup` once the content image's size is known.
        self.register_parameter("image", None)
        # Targets are computed once per run (in `on_fit_start`, on the right device), never per step,
        # and are not checkpointed: a resume recomputes them from the inputs.
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}

    # ---- the image parameter and the targets --------------------------------------------------

    def setup(self, stage: str) -> None:
        content = self._datamodule_images()[0]
        if self.image is None or self.image.shape != content.shape:
            start = content.clone() if self.hparams.init == "content" else torch.rand_like(content)
            self.image = nn.Parameter(start)

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
        if self.hparams.optimizer == "adam":
            # Keep pixels valid after each Adam step (before any checkpoint sees them). Not for L-BFGS,
            # whose curvature estimate a projection would corrupt; its output is clamped when saved.
            with torch.no_grad():
                self.image.clamp_(0, 1)

    # ---- checkpoints hold the image and the optimizer state, not the frozen VGG19 ---------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("vgg.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
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
