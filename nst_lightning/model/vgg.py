"""VGG19 as a frozen feature extractor whose layers are named as in the papers.

``conv4_2`` names the *rectified* response of that convolution, as in Gatys et al. (2015), whose
Caffe network applied ReLU in place; ``relu4_2`` is accepted as a synonym. ``pool1`` ... ``pool5``
name the pooling outputs. The network is cut right after the deepest layer asked for, so unused
layers cost neither time nor memory, and its weights never receive gradients.
"""

from __future__ import annotations

import os
from typing import Literal, Sequence, get_args

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

from nst_lightning.utilities.errors import UserError

# torchvision's layer configuration of VGG19 ("E"): channel counts for convolutions, "M" for pooling.
VGG19_CONFIG = cfgs["E"]


def _layer_indices(config: Sequence[int | str] = VGG19_CONFIG) -> dict[str, int]:
    """Map paper names to indices in ``make_layers(config)``, torchvision's ``vgg19().features``: each
    convolution is followed by its ReLU, each block ends with a pooling layer."""
    indices, index, block, conv = {}, 0, 1, 1
    for entry in config:
        if entry == "M":
            indices[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            # The paper's "conv" is the rectified output, i.e. the module after the convolution.
            indices[f"conv{block}_{conv}"] = indices[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return indices


LAYER_INDEX = _layer_indices()
# A Literal, so that jsonargparse rejects an unknown layer name when the config is parsed.
LayerName = Literal[
    "conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4", "pool3",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4", "pool4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4", "pool5",
    "relu1_1", "relu1_2", "relu2_1", "relu2_2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4",
    "relu5_1", "relu5_2", "relu5_3", "relu5_4",
]  # fmt: skip
assert set(get_args(LayerName)) == set(LAYER_INDEX)

PoolingName = Literal["max", "avg"]
# Average pooling outputs less than the max pooling VGG19 was trained with (of post-ReLU maps, the
# mean of a 2x2 window is at most its max), and the loss compounds over the five pools: biases then
# dominate the deeper layers and their features degrade. Our relative losses cancel a uniform scale of
# a layer, not this change of shape, so each average pool is followed by a gain that restores the
# trained operating point; 1.4 is measured (docs/lab/quality.md, "Measurements behind the defaults").
# crowsonkb/style-transfer-pytorch uses 2.0 for torchvision's weights. Gatys et al. (2015) swapped in
# average pooling without any gain (their VGG19 was rescaled so that each filter's mean activation is
# 1, which we do not reproduce).
AVG_POOL_GAIN = 1.4

# torchvision's input convention, used by both IMAGENET1K_V1 and the Caffe-derived shared weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features_architecture() -> nn.Sequential:
    """torchvision's ``vgg19().features`` without building the 120M-parameter classifier, its parameters
    allocated but not initialised: every caller overwrites them (a state dict, or ``_random_features``),
    and PyTorch's default initialisation of 20M parameters, thrown away at once, was half of building it."""
    with torch.device("meta"):
        features = make_layers(cfgs["E"], batch_norm=False)
    return features.to_empty(device="cpu")


def load_vgg19_features(weights: str, option: str = "--model.weights", deepest: int | None = None) -> nn.Sequential:
    """Build torchvision's ``vgg19().features`` with ``weights``, cut after the module ``deepest`` (an
    index, as ``LAYER_INDEX`` gives; None: all of it).

    ``weights`` is ``"IMAGENET1K_V1"`` (torchvision's weights API; downloaded once into the torch hub
    cache), ``"random"`` (untrained but deterministic, for offline smoke runs and tests), or the path
    of a ``.pth`` state dict of a whole ``vgg19`` or of ``vgg19().features`` alone. Errors name ``option``.
    """
    if weights == "random":
        return _random_features(deepest)
    if weights == "IMAGENET1K_V1":
        try:
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad hash a RuntimeError
            reason = str(getattr(err, "reason", err)).splitlines()[0]
            raise UserError(
                f"could not download the VGG19 weights IMAGENET1K_V1 ({reason}); "
                f"give a local file instead with {option} PATH.pth "
                "(a vgg19 or vgg19().features state dict)"
            ) from None
        features = _features_from_state(state, "IMAGENET1K_V1", option)
    else:
        features = _features_from_file(weights, option)
    return features if deepest is None else features[: deepest + 1]


def _random_features(deepest: int | None = None) -> nn.Sequential:
    """torchvision's initialisation of VGG's convolutions, from a fixed seed of its own: the same
    "random" network in every run and on resume (VGG weights are not checkpointed), without touching
    the global RNG that seeds the image's noise. The convolutions are drawn in order, so a network cut
    after ``deepest`` has the same weights as the whole one's first layers, without drawing the rest."""
    features = vgg19_features_architecture()
    if deepest is not None:
        features = features[: deepest + 1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for module in features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return features


def _features_from_file(path: str, option: str) -> nn.Sequential:
    if not os.path.isfile(path):
        raise UserError(
            f"{option}: no such file {path!r}; give a .pth VGG19 state dict, "
            "'IMAGENET1K_V1' or 'random'"
        )
    try:
        # weights_only: a state dict needs no pickled code, and loading one must never run any.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or non-torch file
        raise UserError(
            f"{option}: {path!r} is not a loadable torch state dict "
            f"({type(err).__name__}); give a .pth VGG19 state dict"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{option}: {path!r} holds a {type(state).__name__}, not a state dict")
    return _features_from_state(state, repr(path), option)


def _features_from_state(state: dict, source: str, option: str) -> nn.Sequential:
    # A whole vgg19 state dict prefixes the convolutions with "features." and adds a classifier.
    if any(key.startswith("features.") for key in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    features = vgg19_features_architecture()
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise UserError(
            f"{option}: {source} is not a VGG19 state dict ({first[:200]}); "
            "give a vgg19 or vgg19().features state dict"
        ) from None
    return features


class ScaledAvgPool2d(nn.AvgPool2d):
    """2x2 average pooling times ``AVG_POOL_GAIN`` (see there)."""

    def __init__(self, gain: float = AVG_POOL_GAIN) -> None:
        super().__init__(kernel_size=2, stride=2)
        self.gain = gain

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.gain


class VGG19Features(nn.Module):
    """Frozen VGG19 cut after the deepest of ``layers``; ``forward`` maps an RGB image in [0, 1]
    to a dict of the named layers' activations. ``pooling="avg"`` replaces the max pooling layers by
    (gain-compensated) average pooling, as Gatys et al. (2015) did.

    ``activation_checkpointing`` keeps, while gradients are being taken, only each block's input and
    the named layers' outputs, and recomputes the rest of a block during backward
    (``torch.utils.checkpoint``, non-reentrant): less memory for more time (docs/lab/performance.md).
    The result is the same."""

    def __init__(
        self,
        layers: Sequence[str],
        weights: str = "IMAGENET1K_V1",
        pooling: PoolingName = "max",
        option: str = "--model.weights",
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        unknown = sorted(set(layers) - set(LAYER_INDEX))
        if unknown:
            raise UserError(f"unknown VGG19 layer(s) {unknown}; known names: {', '.join(LAYER_INDEX)}")
        self.layers = list(dict.fromkeys(layers))
        deepest = max(LAYER_INDEX[name] for name in self.layers)
        self.features = load_vgg19_features(weights, option, deepest)
        if pooling == "avg":
            for index, module in enumerate(self.features):
                if isinstance(module, nn.MaxPool2d):
                    self.features[index] = ScaledAvgPool2d()
        elif pooling != "max":
            raise UserError(f"unknown pooling {pooling!r}; choose max or avg")
        # The recorded outputs are all post-ReLU or pooled; nothing later modifies them in place,
        # so torchvision's in-place ReLUs are safe and save memory.
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._wanted = {}
        for name in self.layers:
            self._wanted.setdefault(LAYER_INDEX[name], []).append(name)
        self.channels_last = False
        self.activation_checkpointing = activation_checkpointing
        # The blocks that checkpointing recomputes: each ends with a pooling layer (or the cut).
        ends = [i + 1 for i, module in enumerate(self.features) if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d))]
        ends = [end for end in ends if end < len(self.features)] + [len(self.features)]
        self.blocks = list(zip([0] + ends[:-1], ends))

    def layer_index(self, name: str) -> int:
        """The index in ``features`` of the module whose output is the layer ``name``."""
        return LAYER_INDEX[name]

    def use_channels_last(self, enabled: bool) -> None:
        """Run the convolutions in NHWC layout (weights and activations). Same result up to float
        rounding; faster where the backend's NHWC kernels are (oneDNN on CPU, see docs/lab/performance.md)."""
        self.channels_last = enabled
        self.features.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def train(self, mode: bool = True) -> "VGG19Features":
        # Always eval: VGG19 has no dropout/batch-norm in `features`, but keep the contract explicit.
        return super().train(False)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = (image - self.mean) / self.std
        if self.channels_last:
            # The image parameter itself stays NCHW: L-BFGS takes flat views of it and its gradient.
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, Tensor] = {}
        checkpointing = self.activation_checkpointing and torch.is_grad_enabled() and x.requires_grad
        for start, end in self.blocks if checkpointing else [(0, len(self.features))]:
            names = [name for index in range(start, end) for name in self._wanted.get(index, ())]
            if checkpointing:
                x, *recorded = checkpoint(self._run, x, start, end, use_reentrant=False)
            else:
                x, *recorded = self._run(x, start, end)
            out.update(zip(names, recorded))
        return out

    def _run(self, x: Tensor, start: int, end: int) -> tuple[Tensor, ...]:
        """Layers ``start`` to ``end - 1`` on ``x``: their output, then each named layer's, in order."""
        recorded = []
        for index in range(start, end):
            x = self.features[index](x)
            recorded += [x] * len(self._wanted.get(index, ()))
        return (x, *recorded)
