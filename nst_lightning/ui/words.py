"""What the page says of a run in plain words, and what it hands a user to reproduce one: the settings of a
run as a sentence (``describe``), as a YAML file that ``nst-lightning fit --config`` takes (``settings_yaml``),
and an error line without the server's paths (``without_paths``). No gradio: plain values in and out.

Both read the run's ``config.yaml``, the complete configuration LightningCLI saved when it started, so a run
continued from the command line is described as it is. It is this server's own file, read as data
(``yaml.safe_load``) all the same.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from nst_lightning.inputs.sources import BUILTIN_PREFIX

CONFIG = "config.yaml"
TITLES = {  # the built-in images, as a visitor knows them
    "tubingen": "Tübingen, the Neckarfront",
    "starry_night": "The Starry Night (van Gogh)",
    "shipwreck": "The Shipwreck of the Minotaur (Turner)",
    "the_scream": "The Scream (Munch)",
}
BUILTIN_PHOTOS = ("tubingen",)
BUILTIN_PAINTINGS = ("starry_night", "shipwreck", "the_scream")
COLOURS = {"none": "the painting's", "luminance": "the photo's (exactly)", "histogram": "the photo's (its palette)"}
# What a fit's options the settings file keeps: the picture's, not where this server put the run.
KEPT = ("seed_everything", "precision_policy", "model", "data", "result")
DROPPED_MODEL = ("init_image",)  # a file on this server: replaced by a placeholder


def read_config(directory: Path) -> Optional[dict]:
    """The run's saved configuration, or None (not written yet, or damaged)."""
    try:
        config = yaml.safe_load((directory / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def describe(config: dict, steps: int) -> str:
    """A run's settings as a line of Markdown a photographer reads: inputs, size, steps, style, colours, method."""
    data, model = config.get("data") or {}, config.get("model") or {}
    styles = data.get("style") if isinstance(data.get("style"), list) else [data.get("style")]
    weights = data.get("style_weights") or [1] * len(styles)
    paintings = [_input(s) for s in styles]
    if len(paintings) > 1:
        paintings = [f"{p} ({_number(w)} part{'s' if w != 1 else ''})" for p, w in zip(paintings, weights)]
    parts = [
        f"**Photo** {_input(data.get('content'))}",
        f"**{'Paintings' if len(styles) > 1 else 'Painting'}** {', '.join(paintings)}",
        f"**Size** {data.get('image_size')} px (long side)",
        f"**Steps** {steps}",
        f"**Style strength** {_number(model.get('style_weight'))}",
        f"**Brush strokes** ×{_number(data.get('style_scale', 1))}",
        f"**Colours** {COLOURS.get(str(model.get('preserve_colors')), model.get('preserve_colors'))}",
        f"**Method** {method(model)}",
        f"**Seed** {config.get('seed_everything')}",
    ]
    return " · ".join(parts)


def method(model: dict) -> str:
    """How the picture is optimised, in words."""
    if model.get("optimizer") == "lbfgs":
        start = {"noise": "from noise", "content": "from the photo"}.get(str(model.get("init")), f"from {model.get('init')}")
        as_in_the_paper = model.get("pooling") == "avg" and model.get("init") == "noise"
        return f"L-BFGS {start}" + (", average pooling (as in the 2015 paper)" if as_in_the_paper else "")
    words = "Adam"
    if model.get("init") == "painting_colors":
        words += " from the photo in the painting's colours"
    elif model.get("init") == "image":
        words += " from an earlier result"
    if model.get("stage_steps"):
        words += f", coarse to fine ({len(model['stage_steps']) + 1} sizes)"
    if model.get("ema_decay"):
        words += ", averaged"
    return words


def settings_yaml(config: dict, name: str, steps: int) -> str:
    """The run's settings as a config file for ``nst-lightning fit --config FILE``: the picture's options
    (model, data, result, seed, precision) and its steps; not where this server kept it (the logger, its
    callbacks, checkpoints). Uploaded inputs become their names in the run (``photo.jpg``), to be replaced
    by the user's own files; built-in ones stay as they are."""
    kept: dict[str, Any] = {key: config[key] for key in KEPT if key in config}
    kept["trainer"] = {"max_steps": steps}
    model, data = dict(kept.get("model") or {}), dict(kept.get("data") or {})
    uploads: list[str] = []

    def local(value: Any) -> Any:
        if isinstance(value, str) and not value.startswith(BUILTIN_PREFIX) and ("/" in value or "\\" in value):
            uploads.append(Path(value).name)
            return Path(value).name
        return value

    data["content"] = local(data.get("content"))
    data["style"] = [local(s) for s in data["style"]] if isinstance(data.get("style"), list) else local(data.get("style"))
    for key in DROPPED_MODEL:
        if model.get(key):
            model[key] = local(model[key])
    kept["model"], kept["data"] = model, data
    kept.pop("ckpt_path", None)
    lines = [
        f"# The settings of the page's run {name}, {steps} steps.",
        "# Make the same picture from the command line:  nst-lightning fit --config THIS_FILE.yaml",
    ]
    if uploads:
        lines.append(f"# Put your own files where it says {', '.join(sorted(set(uploads)))} (or their paths).")
    return "\n".join(lines) + "\n" + yaml.safe_dump(kept, sort_keys=False, allow_unicode=True)


def without_paths(line: str, places: Sequence[tuple[Path, str]]) -> str:
    """``line`` with each server folder of ``places`` replaced by what a visitor may see of it (a run's
    name, or nothing): an error names the run's folder at most, never where the server keeps it."""
    for folder, shown in sorted(places, key=lambda place: -len(str(place[0]))):
        line = line.replace(str(folder) + "/", f"{shown}/" if shown else "").replace(str(folder), shown or "the server's folder")
    return line


def as_html(line: str) -> str:
    """A refusal as the page shows it: the sentence without the program's prefix, in one box."""
    sentence = re.sub(r"^nst_lightning: (error: )?", "", line)
    return f'<div class="nst-message" role="alert">{html.escape(sentence)}</div>'


def _input(source: Any) -> str:
    text = str(source)
    if text.startswith(BUILTIN_PREFIX):
        return TITLES.get(text.removeprefix(BUILTIN_PREFIX), text.removeprefix(BUILTIN_PREFIX))
    return f"yours ({Path(text).name})"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
