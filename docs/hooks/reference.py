"""mkdocs hook: the option reference and the API page, generated from the code at every build.

A page asks for a generated part with a marker line, ``<!-- generated: NAME -->``:

- ``fit-options``: every option of ``fit`` (top-level, ``--model.*``, ``--data.*``, ``--result.*``,
  ``--checkpoint.*``, ``--image_logger.*``, ``--trainer.*``), read from the parser LightningCLI builds for
  the run (``run/cli.py``: the same classes, trainer defaults and extra arguments), with each option's
  type, default and the text jsonargparse takes from the signatures' docstrings;
- ``batch-options``, ``video-options``, ``ui-options``: the argparse parsers of those commands;
- ``api``: a mkdocstrings block for each public name of ``nst_lightning`` (its ``__all__``).

So the reference cannot drift from the code: an option added, renamed or documented differently changes
the page at the next ``mkdocs build``, and a name that cannot be generated fails the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[2]
# The checkout being documented, before any installed copy of the package.
sys.path.insert(0, str(REPO))

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)
# fit's sections in the order a reader meets them; anything else the parser has comes after.
SECTIONS = ["model", "data", "result", "checkpoint", "image_logger", "trainer"]
# Lightning's own docstrings go on with examples and notes written for its API; the reference keeps
# their text up to the first of these and points to Lightning's documentation for the rest.
RST_CUT = re.compile(r"^\s*(\.\. \w+::|Example::|Examples::|Example:|For example::)", re.MULTILINE)
LIGHTNING_DOCS = "https://lightning.ai/docs/pytorch/stable/"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_path}: no generated part called {name!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(fill, markdown)


# --- fit: the LightningCLI parser ---------------------------------------------------------------


class _Parser(Exception):
    """Carries the CLI object out of LightningCLI's constructor once its parsers are built."""


@functools.cache
def _fit_parser() -> Any:
    from nst_lightning.inputs.data import StyleTransferData
    from nst_lightning.model.module import StyleTransfer
    from nst_lightning.run.cli import TRAINER_DEFAULTS, StyleTransferCLI

    class ParserOnly(StyleTransferCLI):
        # LightningCLI builds its parsers, then parses; stop there, before anything is instantiated.
        def parse_arguments(self, parser: Any, args: Any) -> None:
            raise _Parser(self)

    try:
        ParserOnly(StyleTransfer, StyleTransferData, trainer_defaults=TRAINER_DEFAULTS, auto_configure_optimizers=False)
    except _Parser as built:
        return built.args[0]._subcommand_parsers["fit"]
    raise PluginError("LightningCLI parsed arguments without calling parse_arguments: update docs/hooks/reference.py")


def fit_options() -> str:
    parser = _fit_parser()
    actions = [a for a in parser._actions if _documented(a)]
    top = [a for a in actions if "." not in a.dest]
    sections: dict[str, list[Any]] = {}
    for action in actions:
        if "." in action.dest:
            sections.setdefault(action.dest.split(".", 1)[0], []).append(action)
    order = [s for s in SECTIONS if s in sections] + [s for s in sections if s not in SECTIONS]
    out = ["### Top-level options", "", _table(top), ""]
    for section in order:
        group = parser.groups.get(section)
        out += [f"### `--{section}.*` {{#{section}}}", "", _section_intro(section, group), ""]
        out += [_table(sections[section]), ""]
        out += _nested_classes(sections[section])
    return "\n".join(out)


def _documented(action: Any) -> bool:
    name = type(action).__name__
    # --help, and the "--trainer.logger.help CLASS" and "--model CONFIG" helpers (said once per section).
    return not (name in ("_HelpAction", "_ActionHelpClassPath", "_ActionConfigLoad") or action.dest == "help")


def _section_intro(section: str, group: Any) -> str:
    cls = getattr(group, "group_class", None)
    if section == "trainer":
        cls = None
        text = f"Lightning's `Trainer` ([its documentation]({LIGHTNING_DOCS}common/trainer.html)), with this project's defaults."
    elif cls is not None:
        own = cls.__dict__.get("__doc__")
        doc = inspect.cleandoc(own) if own else (sys.modules[cls.__module__].__doc__ or "")
        text = f"`{cls.__name__}` (`{cls.__module__}`): {_markdown(doc.split(chr(10) + chr(10))[0])}"
    else:
        text = _markdown(getattr(group, "title", "") or "")
    return f"{text} `--{section} FILE` reads the section from a YAML file."


def _nested_classes(actions: list[Any]) -> list[str]:
    """Dataclasses inside an option's type (a region of ``--data.regions``): their keys, from their docstrings."""
    import jsonargparse

    out: list[str] = []
    for action in actions:
        for cls in _dataclasses_in(getattr(action, "_typehint", None)):
            sub = jsonargparse.ArgumentParser()
            sub.add_class_arguments(cls, "item")
            keys = [a for a in sub._actions if a.dest.startswith("item.") and _documented(a)]
            out += [f"Each item of `--{action.dest}` (`{cls.__name__}`) has these keys:", "", _table(keys, prefix="item."), ""]
    return out


def _dataclasses_in(hint: Any) -> list[type]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return [hint]
    return [c for arg in typing.get_args(hint) for c in _dataclasses_in(arg)]


def _table(actions: list[Any], prefix: str = "") -> str:
    rows = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    for action in actions:
        name = action.dest.removeprefix(prefix) if prefix else "--" + action.dest
        hint = getattr(action, "_typehint", None)
        rows.append(f"| `{name}` | {_cell(_type_name(hint))} | {_cell(_default(action.default))} | {_help(action.help)} |")
    return "\n".join(rows)


def _type_name(hint: Any) -> str:
    if hint is None:
        return ""
    if hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        names = [_type_name(a) for a in args if a is not type(None)]
        inner = names[0] if len(names) == 1 else f"Union[{', '.join(names)}]"
        return f"Optional[{inner}]" if type(None) in args else inner
    if origin is typing.Literal:
        shown = [repr(a) for a in args]
        if len(shown) > 8:  # VGG19's layer names: the first few, the last, and how many
            shown = [*shown[:4], "...", shown[-1], f"({len(args)} names)"]
        return f"Literal[{', '.join(shown)}]"
    if origin is not None:
        base = getattr(origin, "__name__", str(origin).removeprefix("typing."))
        return f"{base}[{', '.join(_type_name(a) for a in args)}]" if args else base
    if isinstance(hint, type):
        return hint.__name__
    return re.sub(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Za-z_])", "", str(hint))


def _default(value: Any) -> str:
    if value is None or value == argparse.SUPPRESS:
        return "" if value == argparse.SUPPRESS else "None"
    if hasattr(value, "as_dict"):  # jsonargparse's Namespace: a class_path and its init_args
        value = value.as_dict()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return repr(value) if isinstance(value, str) else str(value)


def _cell(code: str) -> str:
    return f"`{code}`" if code else ""


def _help(text: str | None) -> str:
    if not text:
        return ""
    cut = RST_CUT.search(text)
    if cut:
        text = text[: cut.start()].rstrip() + f" ([Lightning's documentation]({LIGHTNING_DOCS}) has more)"
    return _markdown(text).replace("|", "\\|")


def _markdown(text: str) -> str:
    """One line of Markdown from a docstring's reStructuredText: ``code`` and :role:`~x.y` as code."""
    text = re.sub(r":\w+:`(~?)([^`]+)`", lambda m: f"``{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}``", text)
    text = re.sub(r"`([^`<]+?)\s*<([^>`]+)>`_", r"[\1](\2)", text)  # an RST link
    text = text.replace("``", "`")
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    # Text, not HTML: an option's doc may say "<= 0".
    return text.replace("<", "&lt;").replace(">", "&gt;") if "`" not in text else _escape_outside_code(text)


def _escape_outside_code(text: str) -> str:
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


# --- batch, video, ui: argparse ------------------------------------------------------------------

COMMANDS = {"batch": "nst_lightning.batch.cli", "video": "nst_lightning.video.cli", "ui": "nst_lightning.ui.cli"}


def command_options(command: str) -> str:
    try:
        module = importlib.import_module(COMMANDS[command])
    except ImportError as err:
        raise PluginError(f"the {command} command's options need its extra installed ({err.name}): pip install -e \".[docs]\"") from err
    parser: argparse.ArgumentParser = module.parser("nst-lightning")
    rows = [_markdown(parser.description or ""), "", "| option | default | description |", "| --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}`"
        if action.metavar or action.choices:
            name += f" {{{', '.join(map(str, action.choices))}}}" if action.choices else f" {action.metavar}"
        default = "required" if action.required else _cell(_default(action.default))
        rows.append(f"| {name} | {default} | {_help(action.help)} |")
    return "\n".join(rows)


# --- the Python API -------------------------------------------------------------------------------


# The entry points first, then the classes a run is made of; any other public name after them.
API_FIRST = ["stylize", "stylize_video", "StyleTransfer", "StyleTransferData", "UserError"]


def api() -> str:
    import nst_lightning

    out = []
    for name in sorted(nst_lightning.__all__, key=lambda n: (API_FIRST.index(n) if n in API_FIRST else len(API_FIRST), n)):
        obj = getattr(nst_lightning, name)
        out += [f"::: {obj.__module__}.{obj.__qualname__}", ""]
    return "\n".join(out)


GENERATORS = {
    "fit-options": fit_options,
    "batch-options": functools.partial(command_options, "batch"),
    "video-options": functools.partial(command_options, "video"),
    "ui-options": functools.partial(command_options, "ui"),
    "api": api,
}
