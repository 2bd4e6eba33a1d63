"""Bounds on what the command line makes jsonargparse read: config files and YAML in option values.

jsonargparse reads a config file whole, as UTF-8, and builds every value of its YAML, aliases
expanded: a 499-byte "billion laughs" took 17 s and 5 GB, a 16 MB list was still parsing after 120 s
(a 625 kB list of 25,000 styles took 268 s on 2 cores: the cost grows faster than the list), a FIFO
hung, a Latin-1 file was a ``UnicodeDecodeError`` traceback, 2,400 nested brackets a ``RecursionError``
traceback (jsonargparse, like PyYAML's pure-Python loader, walks a document recursively). So before
it parses, ``check_arguments`` looks at every config a command line names (``-c``/``--config``, given
any number of times, and the sections' own ``--trainer``, ``--model``, ``--data``... CONFIG options)
and at every option value written as YAML: a regular file, at most ``MAX_CONFIG_BYTES``, UTF-8,
nested at most ``MAX_YAML_DEPTH`` deep, and at most ``MAX_YAML_NODES`` values once aliases are
expanded, all measured on PyYAML's event stream, which expands nothing and recurses nowhere (its
parsers are state machines: only the document builders recurse), and which is read only as far as
``MAX_YAML_DEPTH``: its scanner is quadratic in the depth (``benchmarks/yaml_limits.py``: 20,000 ``[``
take 0.65 s to stream whole, 1 MB of them is refused in 2 ms). A config (a file or ``--config``
text) that is not YAML is one line saying where. Configs named inside a config file are not followed.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple, Optional, Sequence

import yaml

from nst_lightning.utilities.errors import UserError, param

# This program's configs are under 2 kB; a config of more than this is not one.
MAX_CONFIG_BYTES = 1_000_000
# Values in one config or option, aliases expanded: the longest config here has under 100; 5,000
# parse in about a second.
MAX_YAML_NODES = 5_000
# Nesting of one config or option: this program's configs nest 5 deep (trainer.logger.init_args.save_dir,
# a list of regions); 2,400 levels were a RecursionError in jsonargparse and in yaml.safe_load.
MAX_YAML_DEPTH = 50
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
            check_yaml_text(token, _name_of_value(tokens, k), config=False)


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
        check_yaml_text(value, f"{name} {_short(value)} (YAML text)")
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
    check_yaml_text(text, f"{name} {value}")


def check_yaml_text(text: str, name: str, config: bool = True) -> None:
    """Raise ``UserError`` (naming the text ``name``) for YAML that is too long, too deep or holds too
    many values to give a YAML parser; ``config``: it is a config, which must also be valid YAML (an
    option's value that is not YAML is a plain string, e.g. a file name with ``*``)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise UserError(f"{name} is {len(text) / 1e6:.1f} MB of text; a config or an option's value is at most {MAX_CONFIG_BYTES / 1e6:.0f} MB")
    shape = yaml_shape(text)
    if shape.depth > MAX_YAML_DEPTH:
        raise UserError(
            f"{name} nests its YAML more than {MAX_YAML_DEPTH} levels deep (this program's configs nest 5): "
            "give a config without such nesting"
        )
    if shape.nodes > MAX_YAML_NODES:
        raise UserError(
            f"{name} holds {shape.nodes:,} values once its YAML aliases are expanded, more than the {MAX_YAML_NODES:,} a "
            "config may hold (beyond, parsing takes minutes): give fewer values (an alias counts once per use)"
        )
    if config and shape.error is not None:
        raise UserError(f"{name} is not valid YAML: {shape.error}; correct the YAML")


class YamlShape(NamedTuple):
    """What parsing a YAML text would build: ``nodes`` values with aliases expanded, nested ``depth``
    deep (``MAX_YAML_DEPTH`` + 1: deeper, not read further), and the parser's ``error`` (``None``: valid
    as far as read), as ``problem (line L, column C)``."""

    nodes: int
    depth: int
    error: Optional[str]


def count_nodes(text: str) -> int:
    """The values (scalars and collections) of the YAML ``text`` with every alias expanded, counted
    without expanding any; 0 for text that is not YAML (jsonargparse then says what is wrong)."""
    shape = yaml_shape(text)
    return 0 if shape.error is not None else shape.nodes


def yaml_shape(text: str) -> YamlShape:
    """``text``'s ``YamlShape``, from PyYAML's event stream (no value built, no recursion), read no
    further than ``MAX_YAML_DEPTH`` + 1 levels of nesting."""
    anchors: dict[str, int] = {}
    open_collections: list[tuple[Optional[str], int]] = []  # (anchor, values so far) of each open one
    total = depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_collections.append((event.anchor, 0))
                depth = max(depth, len(open_collections))
                if depth > MAX_YAML_DEPTH:
                    break  # the parser's time grows with the square of the depth: read no further
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
    except yaml.YAMLError as err:
        return YamlShape(total, depth, _yaml_problem(err))
    return YamlShape(total, depth, None)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``did not find expected node content (line 2, column 1)``: PyYAML's problem and where, in one
    clause (its message is several lines, with the text quoted)."""
    problem = getattr(err, "problem", None) or str(err).strip().splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


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
    """``text`` for a one-line message: its first 40 characters of its first line."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 40 and line == text else line[:37] + "..."
