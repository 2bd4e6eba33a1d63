"""``fit --config generated.png``: rerun the run that made a result, from the configuration it carries.

The result's configuration (``outputs/results.py`` embeds it) is handed to LightningCLI as a configuration
*string* (jsonargparse's ``--config`` takes a path or YAML text), so no temporary file is written and
relative paths in it mean what they meant: run the command where the first run was started, with the
same input files. What a user rerunning a result expects, and so what changes from the recorded
configuration:

- it is a **new run**: ``ckpt_path`` is dropped (a resumed run's result equals an uninterrupted one's),
  and it goes into a **new directory** beside the first (the first run's files, the image given as
  ``--config`` included, are never touched). A run in the default layout (no ``version`` named) simply
  gets the next ``version_N``, as every new run does; a run in a named directory that still exists gets
  ``NAME_rerun``, then ``NAME_rerun_2``... (``lightning_logs/quick/rerun`` for a run in
  ``lightning_logs/quick`` itself). Where the named directory is gone (the image was copied to another
  machine) the rerun uses that directory itself.
- options given after ``--config generated.png`` apply as with any config file (later ones win):
  ``--trainer.logger.init_args.version NAME`` picks the directory, ``--trainer.max_steps`` goes further.
- checkpoints go into the new directory (a recorded ``checkpoint.dirpath`` is dropped), and the
  directory is below the current one (an image's absolute or ``..`` ``save_dir`` is refused unless the
  options after it place the run).

A result image is something people download from strangers, so its configuration is **data, never
code**: a YAML file you wrote may name any class (``class_path``, a callback's callables, a logger),
but an image may set only the options that describe the picture, as plain values
(``run/_picture_options.py``: an allow-list of keys and of what each may hold). Anything else is refused in one line naming the key
before jsonargparse sees the text: jsonargparse imports the module a ``class_path`` (or an import-path
string given to a class-typed option) names while parsing, so refusing after parsing is too late. The
text is bounded first (``_config_limits.check_yaml_text``: size, depth, values, valid YAML), then read
with ``yaml.safe_load`` and checked; what will run is said in one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.outputs.results import read_config
from nst_lightning.run._config_limits import check_yaml_text
from nst_lightning.run._picture_options import check_picture_options, shown
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
    return f"--config {image}: rerunning its run ({', '.join(parts)}) into {shown(where, quote=False)}; options given after it apply on top"


def _several(value: Any, what: str) -> str:
    if isinstance(value, list):
        return shown(value[0], quote=False) if len(value) == 1 else f"{len(value)} {what}"
    return shown(value, quote=False)
