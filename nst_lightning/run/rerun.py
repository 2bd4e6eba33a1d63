"""``fit --config generated.png``: rerun the run that made a result, from the configuration it carries.

The result's configuration (``run/output.py`` embeds it) is handed to LightningCLI as a configuration
*string* (jsonargparse's ``--config`` takes a path or YAML text), so no temporary file is written and
relative paths in it mean what they meant: run the command where the first run was started, with the
same input files. What a user rerunning a result expects, and so what changes from the recorded
configuration:

- it is a **new run**: ``ckpt_path`` is dropped (a resumed run's result equals an uninterrupted one's),
  and it goes into a **new directory** next to the first when that one exists (the first run's files,
  the image given as ``--config`` included, are never touched, and the "already holds a run" check
  would refuse it anyway): the logger's ``version`` gets ``_rerun``, then ``_rerun_2``...
  (``lightning_logs/quick/rerun`` for a run in ``lightning_logs/quick``). Where the first directory is
  gone (the image was copied to another machine) the rerun uses that directory itself.
- options given after ``--config generated.png`` apply as with any config file (later ones win):
  ``--trainer.logger.init_args.version NAME`` picks the directory, ``--trainer.max_steps`` goes further.
- checkpoints go into the new directory (a recorded ``checkpoint.dirpath`` is dropped), and the
  directory is below the current one (an image's absolute or ``..`` ``save_dir`` is refused unless the
  options after it place the run).

A result image is something people download from strangers, so its configuration is **data, never
code**: a YAML file you wrote may name any class (``class_path``, a callback's callables, a logger),
but an image may set only the options that describe the picture, as plain values (``check_picture_options``:
an allow-list of keys and of what each may hold). Anything else is refused in one line naming the key
before jsonargparse sees the text: jsonargparse imports the module a ``class_path`` (or an import-path
string given to a class-typed option) names while parsing, so refusing after parsing is too late. The
text is bounded first (``config_limits.check_yaml_text``: size, depth, values, valid YAML), then read
with ``yaml.safe_load`` and checked; what will run is said in one line.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.inputs.masks import Region
from nst_lightning.model.module import StyleTransfer
from nst_lightning.run.callbacks.checkpoint import StepCheckpoint
from nst_lightning.run.callbacks.image_logger import ImageLogger
from nst_lightning.run.callbacks.result import SaveGeneratedImage
from nst_lightning.run.config_limits import check_yaml_text
from nst_lightning.run.output import read_config
from nst_lightning.utilities.errors import UserError, param

# Results that can carry a configuration (PNG text, TIFF description, JPEG comment).
CONFIG_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def configs_from_images(args: Optional[list[str]]) -> Optional[list[str]]:
    """``args`` (default ``sys.argv[1:]``) with each ``--config IMAGE`` replaced by the YAML of the run
    that made the image, as a rerun (above); ``args`` itself when none names an image."""
    given = sys.argv[1:] if args is None else list(args)
    out, changed, i = [], False, 0
    while i < len(given):
        arg = given[i]
        if arg == "--config" and i + 1 < len(given) and _is_image(given[i + 1]):
            out += ["--config", rerun_config(given[i + 1], given[i + 2 :])]
            changed, i = True, i + 2
            continue
        if arg.startswith("--config=") and _is_image(arg.partition("=")[2]):
            out.append("--config=" + rerun_config(arg.partition("=")[2], given[i + 1 :]))
            changed = True
        else:
            out.append(arg)
        i += 1
    return out if changed else args


def _is_image(value: str) -> bool:
    return Path(value).suffix.lower() in CONFIG_IMAGE_SUFFIXES


def rerun_config(image: str, later: Sequence[str] = ()) -> str:
    """The YAML to rerun the run that made ``image``; a ``UserError`` when it carries none, or anything
    but the picture's options. ``later``: the arguments after it (which may place the run elsewhere)."""
    if not os.path.isfile(image):
        raise UserError(f"{param('config')} {image}: no such file; give a result image of nst_lightning or a config.yaml")
    try:
        text = read_config(image)
    except Exception as err:  # not an image, or a damaged one: PIL's errors vary by format
        raise UserError(f"{param('config')} {image} is not a readable image ({type(err).__name__}); give a result image or a config.yaml") from None
    if text is None:
        raise UserError(
            f"{param('config')} {image} carries no nst_lightning configuration (written by another program, saved with "
            f"{param('result.embed_config')} false, or re-saved by a tool that drops text chunks); give the run's config.yaml instead"
        )
    # Bounded before any parser builds it: size, nesting, values with aliases expanded, valid YAML.
    check_yaml_text(text, f"{param('config')} {image} (its embedded configuration)")
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise UserError(f"{param('config')} {image} carries a damaged configuration; give the run's config.yaml instead")
    check_picture_options(config, image)
    _check_place(config, image, later)
    config["ckpt_path"] = None  # a new run, not a resume of the first
    if isinstance(config.get("checkpoint"), dict):
        config["checkpoint"]["dirpath"] = None  # the new run's checkpoints in its own directory
    _new_directory(config)
    rank_zero_info(_what_runs(config, image))
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


# Where an image's run writes, and the options after it on the command line that say it instead.
_PLACES = {
    ("trainer", "logger", "init_args", "save_dir"): ("--trainer.logger.init_args.save_dir", "--trainer.logger"),
    ("trainer", "default_root_dir"): ("--trainer.default_root_dir",),
}


def _check_place(config: dict[str, Any], image: str, later: Sequence[str]) -> None:
    """The directory an image's run writes into is below the current one (a relative path without
    ``..``), unless the options after the image place it: a downloaded file does not choose where on
    the disk files are written."""
    for keys, options in _PLACES.items():
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or any(arg == o or arg.startswith(o + "=") for arg in later for o in options):
            continue
        path = Path(str(value))
        if path.is_absolute() or ".." in path.parts:
            raise UserError(
                f"{param('config')} {image}: its embedded {'.'.join(keys)} is {str(value)!r}, not a directory below this "
                f"one; to rerun it, say where: {options[0]} DIR after the image"
            )


def _new_directory(config: dict[str, Any]) -> None:
    """Point the logger (TensorBoard's or CSV's layout: ``save_dir/name/version``) at a directory that
    does not exist yet, when the recorded one does."""
    logger = (config.get("trainer") or {}).get("logger")
    init = logger.get("init_args") if isinstance(logger, dict) else None
    if not isinstance(init, dict) or init.get("version") is None:
        return  # no logger, another kind, or version None: the logger makes a new version_N itself
    version = init["version"]
    version = f"version_{version}" if isinstance(version, int) else str(version)
    base = Path(str(init.get("save_dir") or ".")) / str(init.get("name") or "")
    if not (base / version).exists():
        return
    stem = f"{version}_rerun" if version else "rerun"
    candidate, n = stem, 2
    while (base / candidate).exists():
        candidate, n = f"{stem}_{n}", n + 1
    init["version"] = candidate


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
        return (), f"is {_shown(value)}, not a plain name (letters, digits, _ and -)"
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
        return f"{'a list with' if isinstance(value, list) else 'a mapping with'} class_path {_shown(named[0]['class_path'])}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list of mappings or lists"
    return _shown(value)


def _shown(value: Any, quote: bool = True) -> str:
    """``value`` for one line: quoted (a string), control characters escaped, at most 60 characters."""
    text = repr(value) if quote or not isinstance(value, str) else value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 60 else text[:57] + "..."


def _what_runs(config: dict[str, Any], image: str) -> str:
    """One line: what the rerun of ``image`` will make, and where (the image's values; options given
    after it apply on top)."""
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    logger = trainer.get("logger")
    init = (logger.get("init_args") or {}) if isinstance(logger, dict) else {}
    where = os.path.normpath(os.path.join(str(init.get("save_dir") or "."), str(init.get("name") or ""), str(init.get("version") or "")))
    parts = [f"content {_several(data.get('content'), 'photos')}", f"style {_several(data.get('style'), 'paintings')}"]
    if data.get("regions"):
        parts.append(f"{len(data['regions'])} regions")
    parts += [f"{data.get('image_size')} px", f"{trainer.get('max_steps')} steps", f"seed {config.get('seed_everything')}"]
    if logger is None or logger is True:
        where = "the default run directory"
    return f"--config {image}: rerunning its run ({', '.join(parts)}) into {_shown(where, quote=False)}; options given after it apply on top"


def _several(value: Any, what: str) -> str:
    if isinstance(value, list):
        return _shown(value[0], quote=False) if len(value) == 1 else f"{len(value)} {what}"
    return _shown(value, quote=False)
