"""What a result image's configuration may set when it is rerun (``fit --config IMAGE``, ``run/rerun.py``):
the options that describe the picture, as plain values, and nothing that names code.

jsonargparse imports the module that a ``class_path`` names while it parses, and so it does for an
import-path string given to an option typed as a class (``trainer.profiler: pkg.Mod``, a region
given as a string); a callback's options can name any callable. So an image's configuration is
checked on ``yaml.safe_load``'s data, before jsonargparse sees it, against an allow-list of keys and of
what each may hold (``check_picture_options``); a YAML file the user wrote is not checked: its
author chose the classes it names.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable, Optional

from nst_lightning.callbacks.checkpoint import StepCheckpoint
from nst_lightning.callbacks.image_logger import ImageLogger
from nst_lightning.callbacks.result import SaveGeneratedImage
from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.inputs.masks import Region
from nst_lightning.model.module import StyleTransfer
from nst_lightning.utilities.errors import UserError, param

# What a result image's configuration may hold. Each option is allowed by name, with what its value
# may be; the sections of the project's own classes allow their parameters (whose types are plain:
# tests/run/test_rerun_safety.py checks that against the parser), the Trainer the options below.
# A check returns None (allowed) or the problem: the keys that lead to the value, and what is wrong.
Problem = tuple[tuple[str, ...], str]
Check = Callable[[Any], Optional[Problem]]

_SCALAR = (str, int, float, bool, type(None))
_NAME = re.compile(r"[A-Za-z0-9_-]*")  # no dot, no slash: cannot name a module, a class path or a file
TENSORBOARD = "lightning.pytorch.loggers.TensorBoardLogger"


def _plain(value: Any) -> Optional[Problem]:
    """A plain value: null, a boolean, a number, a string, or a list of them."""
    if isinstance(value, _SCALAR) or (isinstance(value, list) and all(isinstance(v, _SCALAR) for v in value)):
        return None
    return (), f"is {_kind(value)}, not a plain value (a number, a string, a list of them)"


def _name(value: Any) -> Optional[Problem]:
    """A plain value that cannot name a module or a path: a word, a number, a boolean or null."""
    if isinstance(value, str) and not _NAME.fullmatch(value):
        return (), f"is {shown(value)}, not a plain name (letters, digits, _ and -)"
    return None if isinstance(value, _SCALAR) else ((), f"is {_kind(value)}, not a plain name")


def _null(value: Any) -> Optional[Problem]:
    return None if value is None or value == [] else ((), f"is {_kind(value)}, where only null is allowed")


def _duration(value: Any) -> Optional[Problem]:
    """A duration: a plain value, or ``{days: 1, hours: 2}`` (whole numbers of units)."""
    units = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
    if not isinstance(value, dict):
        return _plain(value)
    if all(key in units and isinstance(v, int) and not isinstance(v, bool) for key, v in value.items()):
        return None
    return (), f"is {_kind(value)}, not a duration ({', '.join(units)}: whole numbers)"


def _exactly(expected: str) -> Check:
    return lambda value: None if value == expected else ((), f"is {_kind(value)}, where only {expected} is allowed")


def _section(checks: dict[str, Check]) -> Check:
    """A mapping (or null) whose keys are among ``checks``, each value passing its own."""

    def check(value: Any) -> Optional[Problem]:
        if value is None:
            return None
        if not isinstance(value, dict):
            return (), f"is {_kind(value)}, not a mapping of options"
        for key, item in value.items():
            if key not in checks:
                return (str(key),), "is not an option a result image may set"
            problem = checks[key](item)
            if problem is not None:
                return (key, *problem[0]), problem[1]
        return None

    return check


def _list_of(check: Check) -> Check:
    def each(value: Any) -> Optional[Problem]:
        if value is None:
            return None
        if not isinstance(value, list):
            return (), f"is {_kind(value)}, not a list"
        for k, item in enumerate(value):
            problem = check(item)
            if problem is not None:
                return (str(k), *problem[0]), problem[1]
        return None

    return each


def _parameters(kind: type, **special: Check) -> dict[str, Check]:
    """The parameters of one of the project's classes (plain values), some with a check of their own."""
    if dataclasses.is_dataclass(kind):
        names = [field.name for field in dataclasses.fields(kind)]
    else:
        names = [name for name in inspect.signature(kind.__init__).parameters if name != "self"]
    return {name: special.get(name, _plain) for name in names}


# The run directory's parts below save_dir are names, not paths: with ".." or "/" they could lead anywhere.
_LOGGER_ARGS = {
    "save_dir": _plain,
    **dict.fromkeys(("name", "version", "sub_dir", "filename_suffix"), _name),  # parts of file paths
    **dict.fromkeys(("prefix", "comment", "log_graph", "default_hp_metric", "purge_step", "max_queue", "flush_secs"), _plain),
}
_TENSORBOARD_LOGGER = _section({"class_path": _exactly(TENSORBOARD), "init_args": _section(_LOGGER_ARGS)})
# The Trainer's options whose types take plain values only; those that take a class (callbacks,
# plugins, profiler, the logger) or a name that could be resolved to one (accelerator, strategy) have
# their own check.
_TRAINER = {
    **dict.fromkeys(
        (
            "devices", "num_nodes", "precision", "fast_dev_run", "max_epochs", "min_epochs", "max_steps", "min_steps",
            "limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches",
            "check_val_every_n_epoch", "num_sanity_val_steps", "log_every_n_steps", "enable_checkpointing",
            "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches", "gradient_clip_val",
            "gradient_clip_algorithm", "deterministic", "benchmark", "inference_mode", "use_distributed_sampler",
            "detect_anomaly", "barebones", "sync_batchnorm", "reload_dataloaders_every_n_epochs", "default_root_dir",
            "enable_autolog_hparams",
        ),
        _plain,
    ),
    "max_time": _duration,
    "val_check_interval": _duration,
    "accelerator": _name,
    "strategy": _name,
    "logger": lambda value: None if isinstance(value, (bool, type(None))) else _TENSORBOARD_LOGGER(value),
    **dict.fromkeys(("callbacks", "plugins", "profiler", "model_registry"), _null),
}
# The sections of the project's own classes: their parameters, as plain values (``data.regions``: a
# list of regions, each its fields).
PICTURE_OPTIONS_BY_SECTION: dict[str, dict[str, Check]] = {
    "model": _parameters(StyleTransfer),
    "data": _parameters(StyleTransferData, regions=_list_of(_section(_parameters(Region)))),
    "checkpoint": _parameters(StepCheckpoint, train_time_interval=_duration),
    "image_logger": _parameters(ImageLogger),
    "result": _parameters(SaveGeneratedImage),
}
PICTURE_OPTIONS: Check = _section(
    {
        "seed_everything": _plain,
        "trainer": _section(_TRAINER),
        **{section: _section(options) for section, options in PICTURE_OPTIONS_BY_SECTION.items()},
        "precision_policy": _name,
        "verbose": _plain,  # how much of Lightning's output a run shows
        "ckpt_path": _plain,  # dropped: a rerun is a new run
        "weights_only": _plain,  # every checkpoint is loaded weights_only, whatever this says
    }
)


def check_picture_options(config: dict[str, Any], image: str) -> None:
    """Refuse, naming the key, a configuration from ``image`` that sets anything but the picture's
    options as plain values (the allow-list above)."""
    problem = PICTURE_OPTIONS(config)
    if problem is not None:
        keys, why = problem
        raise UserError(
            f"{param('config')} {image}: its embedded {'.'.join(keys)} {why}; a result image is data: it may set the "
            "picture's options as plain values only, no class, callable or import path (to run what a config names, give "
            "a config.yaml you have read)"
        )


def _kind(value: Any) -> str:
    """What ``value`` is, for a message: its class_path when it names one."""
    named = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict) and "class_path" in v]
    if named:
        return f"{'a list with' if isinstance(value, list) else 'a mapping with'} class_path {shown(named[0]['class_path'])}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list of mappings or lists"
    return shown(value)


def shown(value: Any, quote: bool = True) -> str:
    """``value`` for one line: quoted (a string), control characters escaped, at most 60 characters."""
    text = repr(value) if quote or not isinstance(value, str) else value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 60 else text[:57] + "..."
