"""What the loss compares the image against: computed once per size (at the start and at each
coarse-to-fine stage), never per step, and not checkpointed (a resume recomputes them from the inputs).

One concept, ``Targets``: per image of the result, its content features and its style targets (of
the style statistic's making); the photo's colours where the output needs them (``preserve_colors:
luminance``); and extra loss terms on the image itself (``terms``), which a kind of target that is no
VGG19 feature adds (video's previous frame: a temporal loss). Each kind of input makes them through
one interface, ``TargetKind.compute(measure, datamodule, long_side)``:

- ``Photos``: one photo with its painting(s) blended, or K photos optimised together, each with its own;
- ``Regions``: one photo whose regions each take their own paintings (Gatys et al. 2017, Sec. 4).

``kind_for`` picks the kind from the datamodule; a caller may set ``StyleTransfer.target_kind`` before
``fit`` for another. ``Measure`` is what every kind measures with.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol, Sequence, Union

import torch
from torch import Tensor

from nst_lightning.inputs.data import InputData
from nst_lightning.loss.guided import GuidedTarget, layer_masks
from nst_lightning.loss.total import LossWeights
from nst_lightning.model.options import ControlOptions

FeatureTargets = tuple[dict[str, Tensor], dict[str, Any]]  # one image's content features and style targets


class Term(Protocol):
    """A loss term on the image itself, e.g. a temporal loss: ``term(image)`` is its weighted value (an
    fp32 scalar), added to the total ``loss`` and logged as ``train/<name>``. Per-pixel terms work
    tiled too: they are computed on the whole image, as total variation is."""

    name: str

    def __call__(self, image: Tensor) -> Tensor: ...


class Targets(NamedTuple):
    images: list[FeatureTargets]
    colors: Optional[Tensor] = None
    terms: Sequence[Term] = ()


class Measure:
    """How targets are measured: VGG19's features and style statistics of an image, in fp32 outside
    autocast (exact targets), in tiles when the run is tiled (targets of an image of any size), the
    photo and the paintings transformed by the colour controls first."""

    def __init__(self, vgg: Any, statistic: Any, weights: LossWeights, control: ControlOptions, tiled_loss: Any, device: torch.device) -> None:
        self.vgg, self.statistic, self.weights, self.control = vgg, statistic, weights, control
        self.tiled_loss, self.device = tiled_loss, device

    def __call__(self, image: Tensor, content_layers: Any, style_layers: Any, masks: Optional[dict] = None) -> FeatureTargets:
        """Features of ``content_layers`` and style statistics of ``style_layers`` (weighted by
        ``masks``, per layer, where given)."""
        masks = masks or {}
        if self.tiled_loss is not None:
            return self.tiled_loss.measure(image, content_layers, style_layers, masks)
        features = self.vgg(image)
        return {n: features[n].float() for n in content_layers}, {n: self.statistic.target(features[n], masks.get(n)) for n in style_layers}

    def colors(self, content: Tensor) -> Optional[Tensor]:
        return self.control.colors_to_keep(content.to(self.device, torch.float32))

    def painting(self, style: Tensor, content: Tensor) -> Tensor:
        return self.control.as_painting(style.to(self.device, torch.float32), content)

    @torch.no_grad()
    def image_targets(self, content: Tensor, style: Union[Tensor, list[Tensor]], blend_weights: Optional[list[float]] = None) -> FeatureTargets:
        """Content features and blended style statistics of one photo ``[1, 3, H, W]``."""
        content = content.to(self.device, torch.float32)
        styles = [self.painting(s, content) for s in ([style] if isinstance(style, Tensor) else style)]
        content = self.control.vgg_input(content)
        with torch.autocast(device_type=self.device.type, enabled=False):
            content_targets = self(content, self.weights.content_layers, [])[0]
            # One style image at a time: a blend of large paintings stays small in memory.
            per_style = [self(s, [], self.weights.style_layers)[1] for s in styles]
        blend = blend_weights or [1.0 / len(styles)] * len(styles)
        return content_targets, {n: self.statistic.blend([t[n] for t in per_style], blend) for n in self.weights.style_layers}


class TargetKind(Protocol):
    def compute(self, measure: Measure, datamodule: InputData, long_side: int) -> Targets: ...


class Photos:
    """One photo and its painting(s); or K photos optimised together (``datamodule.members``), each
    with its own targets."""

    @staticmethod
    def of(measure: Measure, content: Tensor, style: Union[Tensor, list[Tensor]], blend_weights: Optional[list[float]] = None) -> Targets:
        """The targets of one photo ``[1, 3, H, W]`` and its painting(s), without a datamodule."""
        return Targets([measure.image_targets(content, style, blend_weights)], measure.colors(content))

    def compute(self, measure: Measure, datamodule: InputData, long_side: int) -> Targets:
        members = datamodule.members(long_side)
        images = [measure.image_targets(content, styles, blend) for content, styles, blend in members]
        return Targets(images, measure.colors(torch.cat([content for content, _, _ in members])))


class Regions:
    """Content features, and per style layer a ``GuidedTarget``: each region's (blended) style statistic,
    from its paintings inside their style masks, with the region's mask at that layer and its share
    of the loss (Gatys et al. 2017, Sec. 4); ``datamodule.region_inputs`` gives the regions."""

    def __init__(self, method: str = "downsample") -> None:
        self.method = method  # how a mask reaches each layer (``loss.guided.layer_masks``)

    def compute(self, measure: Measure, datamodule: InputData, long_side: int) -> Targets:
        return self.of(measure, datamodule.images(long_side)[0], datamodule.region_inputs(long_side))

    @torch.no_grad()
    def of(self, measure: Measure, content: Tensor, regions: list[dict[str, Any]]) -> Targets:
        content = content.to(measure.device, torch.float32)
        statistic, style_layers = measure.statistic, measure.weights.style_layers
        indices = {name: measure.vgg.layer_index(name) for name in style_layers}

        def at_layers(mask: Optional[Tensor]) -> dict[str, Optional[Tensor]]:
            if mask is None:
                return dict.fromkeys(style_layers)
            return layer_masks(mask.to(measure.device), measure.vgg.features, indices, self.method)

        parts: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in style_layers}
        with torch.autocast(device_type=measure.device.type, enabled=False):
            content_targets = measure(measure.control.vgg_input(content), measure.weights.content_layers, [])[0]
            for region in regions:
                per_style = []
                for image, style_mask in zip(region["styles"], region["style_masks"]):
                    per_style.append(measure(measure.painting(image, content), [], style_layers, at_layers(style_mask))[1])
                masks = at_layers(region["mask"])
                for name in style_layers:
                    parts[name][0].append(statistic.blend([t[name] for t in per_style], region["blend"]))
                    parts[name][1].append(masks[name])
                    parts[name][2].append(region["share"])
        return Targets([(content_targets, {name: GuidedTarget(*parts[name]) for name in style_layers})], measure.colors(content))


def kind_for(datamodule: InputData, region_masks: str = "downsample") -> TargetKind:
    """The kind of targets the datamodule's inputs make: regions if it has them, else photos."""
    return Regions(region_masks) if datamodule.regions is not None else Photos()


def add_terms(losses: dict[str, Tensor], terms: Sequence[Term], image: Tensor) -> dict[str, Tensor]:
    """``losses`` with each term of ``terms`` on ``image`` added to the total and named on its own."""
    for term in terms:
        value = term(image)
        losses["loss"] = losses["loss"] + value
        losses[term.name] = value
    return losses
