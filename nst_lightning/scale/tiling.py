"""Exact tiled optimisation: the whole image's loss and gradient, computed tile by tile.

The content loss is a sum over feature positions, and the style loss depends on the whole image only
through what a first pass over the tiles can fix: statistics that are averages over positions (Gram,
Wasserstein), or each position's own target (the ranks of sliced Wasserstein's projections, a
position's nearest painting feature). So one evaluation is two passes over tiles, and its gradient is
the untiled one, up to float rounding (the seam: ``loss/statistics.py``'s ``part``, ``settle``,
``surrogate``):

1. Without gradients, each tile's VGG19 features give its ``part`` of each style layer's loss (its
   statistic, or its positions' projections or matches) and of the content loss. ``settle`` makes
   the whole image's loss from the parts, and a guide per tile (``dL/dS``; each position's target).
2. With gradients, each tile backpropagates a ``surrogate`` plus its content part, whose gradient
   with respect to the tile's features is exactly the true one, given what pass 1 fixed. The
   gradients of the tiles' crops add up in the image's gradient.

Each feature position is *owned* by one tile: a tile's inner region is a block of a grid aligned to
the deepest layer's stride (so that every pooling window is the same in the tile as in the whole
image), and the tile is read with a halo at least as wide as that layer's receptive field reaches,
so that the features it owns do not see the crop's edge. This is the scheme of Galerne et al.,
"Scaling Painting Style Transfer" (2024), written for this project's losses.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor

from nst_lightning.loss.functional import total_variation_loss
from nst_lightning.loss.guided import GuidedTarget
from nst_lightning.loss.samples import Evaluation
from nst_lightning.loss.statistics import StyleStatistic
from nst_lightning.loss.total import LossWeights, weighted_losses
from nst_lightning.scale.tiles import Tile, halo_and_alignment, layer_geometry, tile_grid


class TiledLoss:
    """The loss of ``loss.total.weighted_losses`` and its gradient for an image of any size, in tiles of
    about ``tile_size`` pixels a side: memory is that of one tile with its halo, plus the image-sized
    tensors (the image, its gradient, the optimizer state, the content targets)."""

    def __init__(self, vgg: Any, weights: LossWeights, statistic: StyleStatistic, tile_size: int) -> None:
        self.vgg, self.weights, self.statistic, self.tile_size = vgg, weights, statistic, tile_size
        self.layers = list(dict.fromkeys([*weights.content_layers, *weights.style_layers]))
        geometry = layer_geometry(vgg.features)
        self.geometry = {name: geometry[vgg.layer_index(name)] for name in self.layers}
        self.halo, self.align = halo_and_alignment(list(self.geometry.values()))

    def tiles(self, height: int, width: int) -> list[Tile]:
        return tile_grid(height, width, self.tile_size, self.halo, self.align)

    def owned(self, tile: Tile, name: str, size: tuple[int, int]) -> tuple[slice, slice]:
        """The part of ``name``'s feature map of ``tile``'s crop that the tile owns, for an image of
        ``size``; the last tile of a row or column takes the image's last (floored) positions."""
        s = self.geometry[name].stride
        (y0, y1, x0, x1), (cy0, _, cx0, _) = tile.inner, tile.crop
        end_y = size[0] // s if y1 == size[0] else y1 // s
        end_x = size[1] // s if x1 == size[1] else x1 // s
        return slice(y0 // s - cy0 // s, end_y - cy0 // s), slice(x0 // s - cx0 // s, end_x - cx0 // s)

    def owned_in_image(self, tile: Tile, name: str, size: tuple[int, int]) -> tuple[slice, slice]:
        """The same positions as ``owned``, in the whole image's feature map."""
        s, (ys, xs), (cy0, _, cx0, _) = self.geometry[name].stride, self.owned(tile, name, size), tile.crop
        return slice(ys.start + cy0 // s, ys.stop + cy0 // s), slice(xs.start + cx0 // s, xs.stop + cx0 // s)

    @torch.no_grad()
    def measure(
        self, image: Tensor, content_layers: Sequence[str], style_layers: Sequence[str], masks: Optional[Mapping[str, Optional[Tensor]]] = None
    ) -> tuple[dict, dict]:
        """The features of ``content_layers`` (whole maps, assembled from the parts the tiles own) and
        the style statistics of ``style_layers`` (mixed from the tiles'; weighted by ``masks``, whole
        masks at each layer's resolution, where given), as one untiled pass would give them, in
        memory for one tile: targets of an image of any size."""
        masks = masks or {}
        size = tuple(image.shape[-2:])
        features: dict[str, Tensor] = {}
        parts: dict[str, list] = {name: [] for name in style_layers}
        counts: dict[str, list[int]] = {name: [] for name in style_layers}
        for tile in self.tiles(*size):
            tile_features = self._features(image, tile, lambda x: x)
            for name in content_layers:
                ys, xs = self.owned(tile, name, size)
                owned = tile_features[name][..., ys, xs].float()
                if name not in features:
                    s = self.geometry[name].stride
                    features[name] = owned.new_empty((*owned.shape[:2], size[0] // s, size[1] // s))
                features[name][(..., *self.owned_in_image(tile, name, size))] = owned
            for name in style_layers:
                ys, xs = self.owned(tile, name, size)
                owned = tile_features[name][..., ys, xs]
                mask = _owned_mask(masks.get(name), self.owned_in_image(tile, name, size))
                mass = owned.shape[-2] * owned.shape[-1] if mask is None else float(mask.sum())
                if mass > 0:
                    parts[name].append(self.statistic.target(owned, mask))
                    counts[name].append(mass)
        statistics = {name: self.statistic.mix(parts[name], [n / sum(counts[name]) for n in counts[name]]) for name in style_layers}
        return features, statistics

    def losses_and_backward(
        self,
        image: Tensor,
        content_targets: Mapping[str, Tensor],
        style_targets: Mapping[str, Any],
        backward: Callable[[Tensor], None],
        vgg_input: Callable[[Tensor], Tensor] = lambda image: image,
        terms: Sequence[Callable[[Tensor], Tensor]] = (),
        evaluation: Evaluation = Evaluation(),
    ) -> dict[str, Tensor]:
        """The losses of ``image`` (detached, as ``weighted_losses`` names them), after calling
        ``backward`` on surrogates whose gradients add up to the loss's gradient in ``image.grad``.
        ``terms``: loss terms on the image itself (``model/targets.py``'s ``Term``), each computed on
        the whole image, as total variation is, and added to ``loss`` under its ``name``;
        ``evaluation``: which step this is (``loss.samples.Evaluation``), each tile its ``part``."""
        losses = self._feature_losses_and_backward(image, content_targets, style_targets, backward, vgg_input, evaluation)
        for term in terms:
            with torch.enable_grad():
                value = term(image)
                backward(value)
            losses["loss"], losses[term.name] = losses["loss"] + value.detach(), value.detach()
        return losses

    def _feature_losses_and_backward(
        self,
        image: Tensor,
        content_targets: Mapping[str, Tensor],
        style_targets: Mapping[str, Any],
        backward: Callable[[Tensor], None],
        vgg_input: Callable[[Tensor], Tensor],
        evaluation: Evaluation,
    ) -> dict[str, Tensor]:
        size = tuple(image.shape[-2:])
        tiles = self.tiles(*size)
        if len(tiles) == 1:  # e.g. an early coarse-to-fine stage: one pass, as untiled
            with torch.enable_grad():
                features = self.vgg(vgg_input(image))
                losses = weighted_losses(features, image, content_targets, style_targets, self.weights, self.statistic, evaluation)
                backward(losses["loss"])
            return {name: value.detach() for name, value in losses.items()}
        w = self.weights
        # Each style layer's target as regions (``loss.guided.GuidedTarget``); a plain target is one region
        # everywhere. A region's loss settles from the tiles' parts (and the mask's mass each owns).
        regions = {name: _as_regions(style_targets[name]) for name in w.style_layers}
        # Pass 1: the whole image's statistics and content errors, tile by tile.
        parts = {name: [[] for _ in regions[name]] for name in w.style_layers}
        shares = {name: [[] for _ in regions[name]] for name in w.style_layers}
        # On the device, in fp64 as the Python floats they were (the same sums): a float() per tile
        # would wait for the GPU every tile.
        content_error = {name: image.new_zeros((), dtype=torch.float64) for name in w.content_layers}
        with torch.no_grad():
            for number, tile in enumerate(tiles):
                features = self._features(image, tile, vgg_input)
                for name in w.style_layers:
                    ys, xs = self.owned(tile, name, size)
                    owned = features[name][..., ys, xs]
                    for r, (target, mask, _) in enumerate(regions[name]):
                        mask = _owned_mask(mask, self.owned_in_image(tile, name, size))
                        mass = owned.shape[-2] * owned.shape[-1] if mask is None else float(mask.sum())
                        part = self.statistic.part(owned, target, mask, evaluation.of_part(number)) if mass > 0 else None
                        parts[name][r].append(part)
                        shares[name][r].append(mass)
                for name in w.content_layers:
                    ys, xs = self.owned(tile, name, size)
                    target = self._target_part(content_targets[name], tile, name, size)
                    content_error[name] += (features[name][..., ys, xs].float() - target).pow(2).sum().double()
                del features  # before the next tile's pass, not after it
        # The loss, and per tile what its surrogate needs (``guides``: None where it owns none of a region).
        guides: dict[str, list] = {}
        per_layer = {}
        for name in w.style_layers:
            guides[name], layer_loss = [], None
            for r, (target, _, share) in enumerate(regions[name]):
                present = [k for k, part in enumerate(parts[name][r]) if part is not None]
                guides[name].append([None] * len(tiles))
                if not present:  # the region has no position at this layer (a sliver at the edge)
                    continue
                loss, settled = self.statistic.settle(
                    [parts[name][r][k] for k in present], [shares[name][r][k] for k in present], target, evaluation
                )
                for k, guide in zip(present, settled):
                    guides[name][r][k] = guide
                layer_loss = share * loss.detach() if layer_loss is None else layer_loss + share * loss.detach()
            per_layer[name] = layer_loss if layer_loss is not None else image.new_zeros((), dtype=torch.float32)
        norms = {name: content_targets[name].float().pow(2).sum().clamp_min(1e-12) for name in w.content_layers}
        zero = image.new_zeros((), dtype=torch.float32)
        # reciprocal() *: what `float / tensor` computed when the errors were Python floats (the same bits).
        content = sum((norms[n].reciprocal() * content_error[n].float() for n in w.content_layers), zero) / max(len(w.content_layers), 1)
        style = sum((w.style_layers[n] * per_layer[n] for n in w.style_layers), zero)
        tv = total_variation_loss(image.detach()) if w.tv > 0 else zero
        # Pass 2: each tile's surrogate, whose gradient is its share of the true one. Each crop is a
        # leaf of its own whose gradient is added into the image's: backpropagating through a slice
        # of the image would allocate a zero gradient the size of the whole image for every tile.
        for number, tile in enumerate(tiles):
            cy0, cy1, cx0, cx1 = tile.crop
            crop = image.detach()[..., cy0:cy1, cx0:cx1].clone().requires_grad_()
            with torch.enable_grad():
                features = self.vgg(vgg_input(crop))
                surrogate = zero.clone()
                for name in w.style_layers:
                    ys, xs = self.owned(tile, name, size)
                    owned = features[name][..., ys, xs]
                    for (target, mask, share), region_guides in zip(regions[name], guides[name]):
                        if region_guides[number] is not None:
                            mask = _owned_mask(mask, self.owned_in_image(tile, name, size))
                            part = self.statistic.surrogate(owned, target, mask, region_guides[number], evaluation.of_part(number))
                            surrogate = surrogate + w.style * w.style_layers[name] * share * part
                for name in w.content_layers:
                    ys, xs = self.owned(tile, name, size)
                    target = self._target_part(content_targets[name], tile, name, size)
                    error = (features[name][..., ys, xs].float() - target).pow(2).sum() / norms[name]
                    surrogate = surrogate + w.content * error / max(len(w.content_layers), 1)
                backward(surrogate)
            if image.grad is None:
                image.grad = torch.zeros_like(image)
            image.grad[..., cy0:cy1, cx0:cx1] += crop.grad
            del features, surrogate, crop  # before the next tile's pass, not after it
        if w.tv > 0:
            with torch.enable_grad():
                backward(w.tv * total_variation_loss(image))
        total = w.content * content + w.style * style + w.tv * tv
        losses = {"loss": total, "content_loss": content, "style_loss": style, "tv_loss": tv}
        losses.update({f"style_loss/{n}": loss.detach() for n, loss in per_layer.items()})
        return {name: value.detach() for name, value in losses.items()}

    def _features(self, image: Tensor, tile: Tile, vgg_input: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        cy0, cy1, cx0, cx1 = tile.crop
        return self.vgg(vgg_input(image[..., cy0:cy1, cx0:cx1]))

    def _target_part(self, target: Tensor, tile: Tile, name: str, size: tuple[int, int]) -> Tensor:
        """The part of a whole-image content target that ``tile`` owns."""
        return target[(..., *self.owned_in_image(tile, name, size))].float()


def _as_regions(target: Any) -> list[tuple[Any, Optional[Tensor], float]]:
    """A layer's style target as ``(target, whole-image mask at the layer or None, share)`` per region."""
    if isinstance(target, GuidedTarget):
        return list(zip(target.targets, target.masks, target.shares))
    return [(target, None, 1.0)]


def _owned_mask(mask: Optional[Tensor], owned: tuple[slice, slice]) -> Optional[Tensor]:
    return None if mask is None else mask[(..., *owned)]


def tiled_step(module: Any, optimizer: Any) -> dict[str, Tensor]:
    """One training step of a ``StyleTransfer`` (duck-typed: ``image``, ``tiled_loss``, its targets,
    ``manual_backward``, ``parameterisation``, ``after_step``, ``lr_schedulers``) under manual optimization, its loss and
    gradient computed in tiles; returns the losses, as the untiled ``training_step`` does."""
    losses: dict[str, Tensor] = {}

    def closure() -> Tensor:  # evaluated once per step by Adam and by L-BFGS (max_iter=1) alike
        optimizer.zero_grad()
        targets = (module.image, module.content_targets, module.style_targets)
        evaluation = Evaluation.at(module.global_step)
        losses.update(
            module.tiled_loss.losses_and_backward(*targets, module.manual_backward, module.control.vgg_input, module.target_terms, evaluation)
        )
        module.parameterisation.gradient_done(module.image)  # the whole image's gradient, to what the optimizer moves
        return losses["loss"]

    optimizer.step(closure=closure)
    module.after_step()
    # Lightning steps no scheduler under manual optimization: here, after the optimizer step, as it
    # does after each step under automatic optimization (before the step's callbacks and checkpoint).
    scheduler = module.lr_schedulers()
    if scheduler is not None:
        scheduler.step()
    return losses
