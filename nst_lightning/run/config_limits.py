"""Bounds on what the command line makes jsonargparse read: config files and YAML in option values.

jsonargparse reads a config file whole, as UTF-8, and builds every value of its YAML, aliases
expanded: a 499-byte "billion laughs" took 17 s and 5 GB, a 16 MB list was still parsing after 120 s
(a 625 kB list of 25,000 styles took 268 s on 2 cores: the cost grows faster than the list), a FIFO
hung, a Latin-1 file was a ``UnicodeDecodeError`` traceback. So before it parses, ``check_arguments``
looks at every config a command line names (``-c``/``--config``, given any number of times, and the
sections' own ``--trainer``, ``--model``, ``--data``... CONFIG options) and at every option value
written as YAML: a regular file, at most ``MAX_CONFIG_BYTES``, UTF-8, and at most ``MAX_YAML_NODES``
values once aliases are expanded, counted on PyYAML's event stream, which expands nothing. Configs
named inside a config file are not followed.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Sequence

import yaml

from nst_lightning.utilities.errors import UserError, param

# This program's configs are under 2 kB; a config of more than this is not one.
MAX_CONFIG_BYTES = 1_000_000
# Values in one config or option, aliases expanded: the longest config here has under 100; 5,000
# parse in about a second.
MAX_YAML_NODES = 5_000
# The options whose value is a config file (or a config as YAML text).
CONFIG_OPTIONS = ("-c", "--config", "--trainer", "--model", "--data", "--checkpoint", "--image_logger", "--result")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: 1 MB in a third of a second


def check_arguments(args: Sequence[str]) -> None:
    """Raise ``UserError`` for a config file or a YAML value in ``args`` that jsonargparse should not
    be given; everything else is left to it."""
    tokens = list(args)
    for k, token in enumerate(tokens):
        option, value = _option_and_value(token, tokens[k + 1] if k + 1 < len(tokens) else None)
        if option in CONFIG_OPTIONS and value is not None:
            _check_config(option, value)
        elif not token.startswith("-"):
            _check_yaml_text(token, _name_of_value(tokens, k))


def _option_and_value(token: str, following: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    if token.startswith("--") and "=" in token:
        option, value = token.split("=", 1)
        return option, value
    if token.startswith("-c") and not token.startswith("--") and len(token) > 2:  # -cFILE, -c=FILE
        return "-c", token[2:].removeprefix("=")
    if token.startswith("-"):
        return token, following
    return None, None


def _name_of_value(tokens: list[str], k: int) -> str:
    """How a message names the value at ``tokens[k]``: ``--model.style_layers`` or ``an argument``."""
    before = tokens[k - 1] if k > 0 else ""
    return f"{before.split('=', 1)[0]} {_short(tokens[k])}" if before.startswith("--") else f"the argument {_short(tokens[k])}"


def _check_config(option: str, value: str) -> None:
    name = param(option.lstrip("-") if option != "-c" else "config")
    try:
        info = os.stat(value)
    except (OSError, ValueError):  # not a path: a config given as YAML text
        _check_yaml_text(value, f"{name} {_short(value)}")
        return
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{name} {value} is a directory; give a YAML config file")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{name} {value} is not a regular file ({file_kind(info.st_mode)}); give a YAML config file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise UserError(
            f"{name} {value} is {info.st_size / 1e6:.1f} MB; a config file is at most {MAX_CONFIG_BYTES / 1e6:.0f} MB "
            "(this program's are under 2 kB): give the config you meant"
        )
    with open(value, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(
            f"{name} {value} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    _check_nodes(text, f"{name} {value}")


def _check_yaml_text(text: str, name: str) -> None:
    if len(text) > MAX_CONFIG_BYTES:
        raise UserError(f"{name} is {len(text) / 1e6:.1f} MB of text; an option's value is at most {MAX_CONFIG_BYTES / 1e6:.0f} MB")
    if "*" in text or "\n" in text or text.lstrip().startswith(("[", "{")):  # may hold many values or aliases
        _check_nodes(text, name)


def _check_nodes(text: str, name: str) -> None:
    nodes = count_nodes(text)
    if nodes > MAX_YAML_NODES:
        raise UserError(
            f"{name} holds {nodes:,} values once its YAML aliases are expanded, more than the {MAX_YAML_NODES:,} a "
            "config may hold (beyond, parsing takes minutes): give fewer values (an alias counts once per use)"
        )


def count_nodes(text: str) -> int:
    """The values (scalars and collections) of the YAML ``text`` with every alias expanded, counted
    without expanding any; 0 for text that is not YAML (jsonargparse then says what is wrong)."""
    anchors: dict[str, int] = {}
    open_collections: list[tuple[Optional[str], int]] = []  # (anchor, values so far) of each open one
    total = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_collections.append((event.anchor, 0))
                continue
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, inside = open_collections.pop()
                size = inside + 1
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, size = None, anchors.get(event.anchor, 1)
            else:
                continue
            if anchor is not None:
                anchors[anchor] = size
            if open_collections:
                top_anchor, inside = open_collections[-1]
                open_collections[-1] = (top_anchor, inside + size)
            else:
                total += size
    except yaml.YAMLError:
        return 0
    return total


def file_kind(mode: int) -> str:
    """What a file that is not a plain one is, for a message."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
