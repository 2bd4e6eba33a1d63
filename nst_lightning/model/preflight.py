"""What is checked before a run writes anything, and what that decides: ``check_inputs`` reads and
checks the inputs, the stage schedule, the start image and the memory (a run whose estimate cannot fit
is refused from the images' headers, before they are decoded: ``scale/budget.py``, ``scale/memory.py``),
and returns a ``Plan`` that the module takes (``StyleTransfer.take_plan``). The CLI and ``stylize()`` run
it before the Trainer creates a file; ``StyleTransfer.setup`` runs it only when no plan was given for
this fit (a plain ``Trainer.fit``), so it runs once per fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from nst_lightning.inputs.checkpoints import load_start_image
from nst_lightning.inputs.data import InputData
from nst_lightning.scale.budget import MemoryBudget, plan_run
from nst_lightning.scale.memory import MemoryModel, available_bytes, layer_channels, memory_model
from nst_lightning.scale.multiscale import check_schedule
from nst_lightning.scale.tiles import vgg_halo_and_alignment


@dataclass(frozen=True)
class Plan:
    """What the preflight decided for one fit, which the module takes (``StyleTransfer.take_plan``)."""

    memory_budget: Optional[MemoryBudget] = None  # with max_memory_gb: chooses each stage's tile
    start_image: Optional[Tensor] = None  # init_image, as loaded (each stage's size resizes it)


def check_inputs(module: Any, datamodule: InputData, max_steps: Optional[int], device: torch.device, precision: str) -> Plan:
    """Fail early, with one line, on what would fail mid-run: K photos with L-BFGS or tiles, a warm-up
    as long as the run, a style weight's ramp without a run's length, a size that does not fit on ``device`` (or, with ``max_memory_gb``, the
    budget's plan), unreadable images, a bad stage schedule, an unreadable ``init_image``."""
    optim, compute = module.optim, module.compute
    optim.check_images(len(datamodule.contents), module.tiled_loss is not None)
    optim.check_steps(max_steps)  # a learning-rate schedule's warm-up must fit in the run
    module.loss_options.check_steps(max_steps)  # a style weight's ramp is a part of the run
    # First, from the images' headers: a size that cannot fit is refused before it is decoded.
    halo, align = vgg_halo_and_alignment(module.vgg, module.vgg.layers)  # also untiled: a refusal may suggest tiles
    (height, width), _ = datamodule.header_sizes(datamodule.image_size)
    budget = plan_run(
        functools.partial(memory_model_of, module, datamodule), (height * len(datamodule.contents), width), device, precision, halo=halo, align=align,
        tile_size=compute.tile_size, max_memory_gb=compute.max_memory_gb, check=compute.check_memory,
    )
    datamodule.load()
    check_schedule(optim.stages, max_steps, datamodule)
    start_image = None
    if optim.init == "image":
        # Its size, from its header or the checkpoint's tensor, against the memory there is (it is
        # loaded on the CPU), before it is decoded or allocated.
        available = available_bytes(torch.device("cpu")) if compute.check_memory else None
        start_image = load_start_image(optim.init_image, max_bytes=available)
    return Plan(budget, start_image)


def memory_model_of(module: Any, datamodule: InputData, precision: str) -> MemoryModel:
    """``scale/memory.py``'s estimate for a ``StyleTransfer``'s options and inputs under ``precision``."""
    content, styles = datamodule.header_sizes(datamodule.image_size)
    optim, vgg, statistic = module.optim, module.vgg, module.loss_statistic
    per_pixel = 0.0
    for name in module.loss_weights.style_layers:
        channels, stride = layer_channels(vgg.features, vgg.layer_index(name))
        per_pixel += statistic.working_bytes(channels) / stride**2
    return memory_model(
        vgg.features,
        [vgg.layer_index(n) for n in module.loss_weights.content_layers],
        optimizer=optim.optimizer,
        lbfgs_history=optim.lbfgs_history,
        ema=optim.ema_decay is not None,
        luminance=module.control.luminance,
        precision=precision,
        activation_checkpointing=module.compute.activation_checkpointing,
        style_pixel_ratio=sum(map(math.prod, styles)) / math.prod(content),
        style_loss_bytes=(per_pixel, statistic.fixed_working_bytes if per_pixel else 0.0),
    )
