"""The page's controls as ``fit`` options, their defaults from the ``--config`` the server started with,
the operator's limits on what one request may ask for (``Limits``), and what the page shows of a run as it
goes (progress with an ETA, the loss curve, the end). No gradio: plain values in, plain values out (as a
client sent them: the page takes its inputs unconverted, so that a wrong one is one line, not Gradio's traceback).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from nst_lightning.inputs.sources import BUILTIN_IMAGES, BUILTIN_PREFIX
from nst_lightning.ui.live import Update
from nst_lightning.ui.runner import Outcome
from nst_lightning.utilities.errors import UserError, param

# How the page's presets paint: configs/quick.yaml's method on the pixels (docs/lab/quality.md: the quality of 200 plain
# Adam steps in half the time; its coarse-to-fine and 512 px presets were measured on the pixels), set in full so that a
# preset gives the same picture whatever the server's --config.
METHOD = ("--model.optimizer", "adam", "--model.lr", "null", "--model.init", "painting_colors", "--model.init_color_strength", "0.5",
          "--model.lr_schedule", "linear", "--model.lr_floor", "0.1", "--model.lr_decay_fraction", "0.33", "--model.ema_decay", "0.9",
          "--model.pooling", "max", "--model.parameterisation", "pixels")
# Gatys, Ecker & Bethge (2015) as configs/gatys2015.yaml runs them: L-BFGS from noise, average pooling, no smoothing.
PAPER = ("--model.optimizer", "lbfgs", "--model.lr", "1.0", "--model.init", "noise", "--model.pooling", "avg", "--model.tv_weight", "0",
         "--model.lr_schedule", "constant", "--model.ema_decay", "null", "--model.content_layers", "[conv4_2]",
         "--model.style_layers", "[conv1_1, conv2_1, conv3_1, conv4_1, conv5_1]")


@dataclass(frozen=True)
class StyleLoss:
    """A style loss as the page offers it. ``strength``: its ``--model.style_weight`` for each unit of the
    page's style strength, which is on Gram's scale, so that changing the loss keeps as much of the photo
    (its config's weight over quick.yaml's 10: docs/lab/quality.md); ``cost``: its step's time against
    Gram's, for the page's estimates; ``options``: what else its config (configs/<name>.yaml) sets."""

    strength: float = 1.0
    cost: float = 1.0
    options: tuple[str, ...] = ()


STYLE_LOSSES = {
    "gram": StyleLoss(),
    "wasserstein": StyleLoss(cost=1.15),
    "sliced_wasserstein": StyleLoss(strength=4.5, cost=3.5),
    "nearest_neighbour": StyleLoss(strength=0.9, cost=1.5, options=("--model.style_layers", "[conv3_1, conv4_1, conv5_1]",
                                                                    "--model.init_color_strength", "1.0")),
}
# The loss the best-looking results came from, measured side by side on the example pairs (docs/lab/quality.md).
BEST_LOSS = "sliced_wasserstein"


@dataclass(frozen=True)
class Preset:
    """What a preset gives: the size and steps it puts in the page's fields, coarse-to-fine stages (its
    "steps at each smaller size" field), the method's options it adds to a run over the server's config,
    and the style loss it uses (None: the page's choice)."""

    size: int
    steps: int
    options: tuple[str, ...]
    stages: tuple[int, ...] = ()
    gives: str = ""
    style_loss: Optional[str] = None

    @property
    def cost(self) -> float:
        return STYLE_LOSSES[self.style_loss].cost if self.style_loss else 1.0


PRESETS = {
    "Quick preview": Preset(256, 60, METHOD, gives="a first look, small"),
    "Balanced": Preset(512, 250, METHOD, gives="a good picture for a screen"),
    # configs/multiscale.yaml: 256 px up to 1024 px in five sizes, averaged over the last ~20 steps of each.
    "Best quality": Preset(1024, 330, (*METHOD, "--model.ema_decay", "0.95"), (100, 80, 60, 50), style_loss=BEST_LOSS,
                           gives="large and fine: the big shapes first, then the detail, the painting's whole texture"),
    "As in the 2015 paper": Preset(512, 1000, PAPER, gives="the original method: slower, a little noisier"),
}
# The names of an earlier version of the page, still taken from API callers: the method they set.
OLD_PRESETS = {"as configured": (), "smooth (averaged iterates)": ("--model.ema_decay", "0.95"), "paper (L-BFGS)": ("--model.optimizer", "lbfgs")}
COLOURS = ("none", "luminance", "histogram")  # --model.preserve_colors
OPTIMIZERS = ("from the preset", "adam", "lbfgs")
PREVIEW_SIDE = 256  # a preview smaller than this is shown enlarged
PREVIEWS = 40  # about this many pictures a run; each is a copy from the device and an image in the browser
MIN_TIMED = 5  # steps after the first that make a run's speed worth recording


@dataclass(frozen=True)
class Limits:
    """The most one request may ask for (the server's ``--max-size``, ``--max-steps``): ``size`` px on the
    long side of any image the run makes (the result, and the paintings at ``--data.style_scale``),
    ``steps`` steps. A value that is not a number passes, for the run to refuse naming its option."""

    size: int
    steps: int

    def check(self, size: Any = None, steps: Any = None, style_scale: Any = None, steps_name: str = param("trainer.max_steps")) -> None:
        side, scale, count = _value(size), _value(style_scale), _value(steps)
        if side is not None and side > self.size:
            raise UserError(
                f"{param('data.image_size')} {number(size)}: over this page's limit of {self.size} px (the server's --max-size); "
                f"give {self.size} or less"
            )
        if side is not None and scale is not None and side * scale > self.size:
            raise UserError(
                f"{param('data.style_scale')} {style_scale}: paintings of {side * scale:.0f} px, over this page's limit of {self.size} px "
                f"(the server's --max-size); give {math.floor(self.size / side * 100) / 100:g} or less"
            )
        if count is not None and count > self.steps:
            raise UserError(
                f"{steps_name} {number(steps)}: over this page's limit of {self.steps} steps a run (the server's --max-steps); "
                f"give {self.steps} or less"
            )

    def frames(self, size: Any, first: Any, later: Any, frames: Any) -> int:
        """How many frames of a clip one request may style: ``frames`` (0 or none: as many as fit), when its
        first frame's ``first`` steps and each later one's ``later`` keep the clip within ``steps`` in all."""
        self.check(size, first)
        whole(size, param("data.image_size"))
        first_, later_ = whole(first, param("trainer.max_steps")), whole(later, "--video.frame_steps")
        wanted = whole(frames if frames not in (None, "") else 0, "--frames 0:N, N")
        if first_ < 1 or later_ < 1 or wanted < 0:
            raise UserError(
                f"{param('trainer.max_steps')} {first_}, --video.frame_steps {later_}, {wanted} frames: "
                "give 1 step or more, and 0 frames (all) or more"
            )
        most = 1 + (self.steps - first_) // later_
        if wanted > most:
            total = first_ + (wanted - 1) * later_
            raise UserError(
                f"--frames 0:{wanted}: {wanted} frames of {first_} + {wanted - 1} x {later_} steps are {total} steps, over this page's limit "
                f"of {self.steps} steps a run (the server's --max-steps); give {most} frames or fewer, or fewer steps a frame"
            )
        return wanted or most


@dataclass(frozen=True)
class Defaults:
    """The page's starting values, from the parsed ``fit`` configuration."""

    photo: str = "tubingen"
    paintings: list[str] = field(default_factory=lambda: ["starry_night"])
    size: int = 256
    steps: int = 200
    style_weight: float = 10.0
    style_scale: float = 1.0
    colours: str = "none"
    style_loss: str = "gram"
    seed: int = 0
    stage_steps: str = ""
    memory_gb: float = 0.0
    bit_depth: str = "8"

    @classmethod
    def from_config(cls, config: Any) -> "Defaults":
        def builtins(value: Any) -> list[str]:
            values = value if isinstance(value, list) else [value]
            return [v.removeprefix(BUILTIN_PREFIX) for v in values if str(v).removeprefix(BUILTIN_PREFIX) in BUILTIN_IMAGES]

        seed = config.get("seed_everything")
        stages = config.get("model.stage_steps")
        return cls(
            photo=(builtins(config.get("data.content")) or ["tubingen"])[0],
            paintings=builtins(config.get("data.style")) or ["starry_night"],
            size=int(config.get("data.image_size")),
            steps=int(config.get("trainer.max_steps")),
            # On Gram's scale, as the page's strength is (a server whose config chose another loss shows its weight so)
            style_weight=float(config.get("model.style_weight")) / _strength_of(config.get("model.style_loss")),
            style_scale=float(config.get("data.style_scale")),
            colours=str(config.get("model.preserve_colors")),
            style_loss=str(config.get("model.style_loss")),
            seed=int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0,
            stage_steps=", ".join(str(s) for s in stages) if stages else "",
            memory_gb=float(config.get("model.max_memory_gb") or 0.0),
            bit_depth=str(config.get("result.bit_depth") or 8),
        )


def options(size: Any, steps: Any, strength: Any, scale: Any, colours: Any, preset: Any, optimizer: Any, style_loss: Any,
            seed: Any, stage_steps: Any, memory_gb: Any, bit_depth: Any = "8", weights: Any = None) -> list[str]:
    """The controls as ``fit`` options; their values are checked by the run, which names the option.
    ``preset`` None or "": the server's config's method; ``weights``: the paintings' blend weights (text
    or a list: "2, 1"), None or "" for equal."""
    if preset not in (None, "") and not (isinstance(preset, str) and (preset in PRESETS or preset in OLD_PRESETS)):
        raise UserError(f"quality preset {preset!r}: choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset] if preset in PRESETS else None
    loss = chosen.style_loss if chosen and chosen.style_loss else style_loss
    own = STYLE_LOSSES.get(loss) if isinstance(loss, str) else None  # another value goes to the run, which refuses it
    weight = _value(strength)
    if own and own.strength != 1 and weight is not None:
        strength = round(weight * own.strength, 6)  # not a number: the run refuses it, naming the option
    args = ["--data.image_size", number(size), "--trainer.max_steps", number(steps), "--model.style_weight", str(strength)]
    args += ["--data.style_scale", str(scale), "--model.preserve_colors", str(colours), "--model.style_loss", str(loss)]
    args += list(chosen.options if chosen else OLD_PRESETS.get(preset or "as configured", ()))
    args += list(own.options if own else ())
    blend = ", ".join(number(w) for w in weights) if isinstance(weights, (list, tuple)) else str(weights or "").strip().strip("[]")
    if blend:
        args += ["--data.style_weights", f"[{blend}]"]
    if optimizer not in (None, "", OPTIMIZERS[0]):
        args += ["--model.optimizer", str(optimizer)]
    if seed not in (None, ""):
        args += ["--seed_everything", number(seed)]
    stages = str(stage_steps or "").strip().strip("[]")
    args += ["--model.stage_steps", f"[{stages}]" if stages else "null"]
    args += ["--model.max_memory_gb", str(memory_gb) if memory_gb not in (None, "", 0, 0.0) else "null"]
    args += ["--result.bit_depth", str(bit_depth or 8)]  # 16: a 16-bit PNG to download (outputs/results.py)
    return args


def preview_every(steps: Any) -> int:
    try:
        return max(1, int(steps) // PREVIEWS)
    except (TypeError, ValueError, OverflowError):
        return 1


def inputs(
    photo: Optional[str], builtin_photo: Optional[str], paintings: Optional[Sequence[str]], builtin_paintings: Optional[Sequence[str]]
) -> tuple[str, list[str]]:
    """The photo (an upload, else the built-in one) and the paintings (the uploads, else the built-ins;
    several are blended). An upload wins: a default built-in that stayed ticked is not blended in unasked."""
    chosen = photo or (BUILTIN_PREFIX + _builtin(builtin_photo, "built-in photo") if builtin_photo else None)
    if chosen is None:
        raise UserError("give a photo (upload one, or pick a built-in one)")
    names = builtin_paintings if isinstance(builtin_paintings, (list, tuple)) else [builtin_paintings] if builtin_paintings else []
    styles = [p for p in (paintings or []) if p] or [BUILTIN_PREFIX + _builtin(name, "built-in painting") for name in names]
    return chosen, styles


def whole(value: Any, what: str) -> int:
    """A count from the page (``4``, ``4.0``, ``"4"``), or one line saying what to give."""
    number = _value(value)
    if number is None or not number.is_integer():
        raise UserError(f"{what} {value!r}: give a whole number")
    return int(number)


def _builtin(name: Any, what: str) -> str:
    if name not in BUILTIN_IMAGES:
        raise UserError(f"{what} {name!r}: choose one of {', '.join(BUILTIN_IMAGES)}")
    return name


def _strength_of(loss: Any) -> float:
    own = STYLE_LOSSES.get(loss) if isinstance(loss, str) else None
    return own.strength if own else 1.0


def _value(value: Any) -> Optional[float]:
    """A number the page was given (a client may send a string), or None when it is none (nan included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return None if math.isnan(number) else number


class Progress:
    """What the page shows of a run: the bar with steps and ETA, the loss points so far."""

    def __init__(self, start_step: int = 0) -> None:
        self.start_step = start_step
        self.losses: list[tuple[int, float]] = []
        self.image: Any = None
        self.update: Optional[Update] = None
        self.first: Optional[Update] = None  # the first step's report: the steps after it are timed
        self.shape: tuple[int, ...] = ()

    def add(self, update: Update) -> None:
        self.update = update
        if self.first is None and update.step > self.start_step:
            self.first = update
        if update.loss is not None:
            self.losses.append((update.step, update.loss))
        if update.image is not None:
            self.image, self.shape = enlarged(update.image), update.image.shape

    def timing(self) -> Optional[tuple[int, int, int, float]]:
        """(long side, height, width, seconds a step) of the steps after the first (which builds the targets
        and warms up), or None when fewer than ``MIN_TIMED`` were made."""
        u, first = self.update, self.first
        if u is None or first is None or u.step - first.step < MIN_TIMED or len(self.shape) < 2:
            return None
        height, width = self.shape[:2]
        return max(height, width), height, width, (u.seconds - first.seconds) / (u.step - first.step)

    def bar(self) -> str:
        u = self.update
        if u is None:
            return "<p>starting: reading the inputs and checking the options…</p>"
        done, left = u.step - self.start_step, max(0, u.max_steps - u.step)
        eta = f"ETA {_duration(u.seconds / done * left)}" if done > 0 else "ETA: after the first step"
        loss = f", loss {self.losses[-1][1]:.4g}" if self.losses else ""
        return f'<progress value="{u.step}" max="{u.max_steps}" style="width:100%"></progress><p>step {u.step} of {u.max_steps}, {eta}{loss}</p>'

    def frame(self) -> Any:
        import pandas as pd  # gradio's own dependency: its LinePlot takes a DataFrame

        # Typed even when empty: a first frame without numbers would make the plot's axis categorical for good.
        return pd.DataFrame(self.losses, columns=["step", "loss"]).astype({"step": "int64", "loss": "float64"})


def enlarged(image: Any, side: int = PREVIEW_SIDE) -> Any:
    """A small run's picture (48 px) repeated to about ``side`` px, pixels kept sharp: the browser would
    show it at its own size, a stamp, or blur it."""
    factor = side // max(image.shape[:2])
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def ending(outcome: Outcome) -> str:
    """The end of a run, as a line for the page (the error line itself when it was refused)."""
    if outcome.error is not None:
        return f"<p><b>{html.escape(outcome.error)}</b></p>"
    stopped = f"Stopped after {outcome.steps} steps: the image so far and checkpoints/last.ckpt are saved"
    what = stopped if outcome.stopped else f"Done: {outcome.steps} steps"
    return f"<p>{what}.</p>"


def where(outcome: Outcome) -> str:
    folder = outcome.log.parent
    if not folder.is_dir():  # a run refused before it began leaves no folder
        return ""
    return f"Run folder: `{folder}`  \nIn TensorBoard: `tensorboard --logdir {folder}`"


def number(value: Any) -> str:
    """Gradio's Number gives floats: ``256.0`` as ``256`` for an int option (``256.5`` stays, and is refused)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
