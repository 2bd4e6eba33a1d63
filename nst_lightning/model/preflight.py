"""What is checked before a run writes anything (the CLI calls ``check_inputs`` before the Trainer
creates a file, and ``StyleTransfer.setup`` calls it too): the inputs read and decoded, the stage
schedule, the start image, and the memory: a run whose estimate cannot fit is refused from the images'
headers, before they are decoded (``scale/budget.py``, ``scale/memory.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import torch

from nst_lightning.inputs.checkpoints import load_start_image
from nst_lightning.scale.budget import plan_run
from nst_lightning.scale.memory import MemoryModel, available_bytes, memory_model
from nst_lightning.scale.multiscale import check_schedule
from nst_lightning.scale.tiles import vgg_halo_and_alignment


def check_inputs(module: Any, datamodule: Any, max_steps: Optional[int], device: torch.device, precision: str) -> None:
    """Fail early, with one line, on what would fail mid-run: K photos with L-BFGS or tiles, a warm-up
    as long as the run, a size that does not fit on ``device`` (or, with ``max_memory_gb``, set the
    budget), unreadable images, a bad stage schedule, an unreadable ``init_image``."""
    optim, compute = module.optim, module.compute
    optim.check_images(len(getattr(datamodule, "contents", [None])), module.tiled_loss is not None)
    optim.check_steps(max_steps)  # a learning-rate schedule's warm-up must fit in the run
    # First, from the images' headers: a size that cannot fit is refused before it is decoded.
    halo, align = vgg_halo_and_alignment(module.vgg, module.vgg.layers)  # also untiled: a refusal may suggest tiles
    module.memory_budget = plan_run(
        functools.partial(memory_model_of, module, datamodule), datamodule, device, precision, halo=halo, align=align,
        tile_size=compute.tile_size, max_memory_gb=compute.max_memory_gb, check=compute.check_memory,
    )
    datamodule.load()
    check_schedule(optim.stages, max_steps, datamodule)
    if optim.init == "image" and module._start_image is None:
        # Its size, from its header or the checkpoint's tensor, against the memory there is (it is
        # loaded on the CPU), before it is decoded or allocated.
        available = available_bytes(torch.device("cpu")) if compute.check_memory else None
        module._start_image = load_start_image(optim.init_image, max_bytes=available)  # each size resizes it


def memory_model_of(module: Any, datamodule: Any, precision: str) -> MemoryModel:
    """``scale/memory.py``'s estimate for a ``StyleTransfer``'s options and inputs under ``precision``."""
    content, styles = datamodule.header_sizes(datamodule.image_size)
    optim, vgg = module.optim, module.vgg
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
    )
