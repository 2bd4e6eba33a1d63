"""``stylize()``'s arguments, checked as the CLI checks its options, before anything is built or written.

Each option goes through the same typed signature the CLI parses (``StyleTransfer``'s, ``StyleTransferData``'s,
the Trainer's ``accelerator`` and ``precision``, and ``stylize``'s own annotations), by jsonargparse, so a
bad value is refused with the rule it breaks, as ``--model.lr -1`` is. Python values are not strings to
parse: a string jsonargparse would read as a number or a bool (``max_steps="3"``), or a number it would
read as a string (``log_dir=3``), is refused with the value to write instead. Errors are ``UserError``s
naming the Python argument (``lr``, not ``--model.lr``). In-memory images are ``_api_images.py``'s.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import os
import re
import reprlib
import typing
from typing import Any, Callable, Literal, Mapping, Optional, Union

import lightning.pytorch as pl
from jsonargparse import ArgumentParser, Namespace
from jsonargparse.typing import restricted_number_type

from nst_lightning.inputs.data import StyleTransferData
from nst_lightning.model.module import StyleTransfer
from nst_lightning.utilities.errors import UserError, param

# Lightning's seed_everything (the CLI's seed) takes 0 to 2**32 - 1 and replaces any other seed with 0.
Seed = restricted_number_type("Seed", int, [(">=", 0), ("<=", 2**32 - 1)], docstring="an int from 0 to 4294967295")

# stylize's arguments typed by the Trainer's own signature (the CLI's --trainer.*), not stylize's.
TRAINER_ARGUMENTS = ("accelerator", "precision")
IMAGE_ARGUMENTS = ("content", "style")


class ArgumentTypeError(UserError, TypeError):
    """A keyword ``stylize`` does not take, or a value of a kind no image is: a ``UserError``, and the
    ``TypeError`` Python raises for those."""


def options_of(cls: type) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


class Arguments:
    """Checks ``stylize``'s arguments against the typed signatures: ``check`` returns the model's,
    the datamodule's and the run's values, as the CLI would have parsed them."""

    def __init__(self, function: Callable[..., Any]) -> None:
        parameters = inspect.signature(function).parameters
        own = [name for name, parameter in parameters.items() if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
        self.groups = {
            "model": options_of(StyleTransfer),
            "data": [name for name in options_of(StyleTransferData) if name not in IMAGE_ARGUMENTS],
            "trainer": list(TRAINER_ARGUMENTS),
            "run": [name for name in own if name not in TRAINER_ARGUMENTS],
        }
        self.group_of = {name: group for group, names in self.groups.items() for name in names}
        self.parser = ArgumentParser(exit_on_error=False)
        self.parser.add_class_arguments(StyleTransfer, "model")
        self.parser.add_class_arguments(StyleTransferData, "data", skip=set(IMAGE_ARGUMENTS))
        trainer_skip = set(options_of(pl.Trainer)) - set(TRAINER_ARGUMENTS)
        self.parser.add_class_arguments(pl.Trainer, "trainer", skip=trainer_skip)
        self.parser.add_function_arguments(function, "run", skip=set(IMAGE_ARGUMENTS) | set(TRAINER_ARGUMENTS))
        # Each argument's type, which the messages put in words.
        self.hints = {
            name: typing.get_type_hints(typed)[name]
            for typed, group in (
                (StyleTransfer.__init__, "model"),
                (StyleTransferData.__init__, "data"),
                (pl.Trainer.__init__, "trainer"),
                (function, "run"),
            )
            for name in self.groups[group]
        }

    def check(self, run: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """``{"model": ..., "data": ..., "run": ...}`` (the run's with the Trainer's two), each value
        checked; ``options`` are the ``**options``, refused when unknown."""
        unknown = sorted(name for name in options if self.group_of.get(name) not in ("model", "data"))
        if unknown:
            known = [name for group in ("model", "data") for name in self.groups[group]]
            raise ArgumentTypeError(
                f"stylize() got unexpected keyword argument(s) {', '.join(map(_with_close_match(known), unknown))}; "
                f"options are {', '.join(sorted(known))}, {', '.join([*self.groups['run'], *TRAINER_ARGUMENTS])}"
            )
        checked: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "run": {}}
        for name, value in [*run.items(), *options.items()]:
            group = self.group_of[name]
            checked["run" if group == "trainer" else group][name] = self.value(group, name, value)
        return checked

    def value(self, group: str, name: str, value: Any) -> Any:
        """``value`` as the CLI would have parsed it, or a ``UserError`` naming ``name``."""
        given = _paths_as_strings(value)
        key, must = f"{group}.{name}", describe(self.hints[name])
        if any(given == choice and type(given) is type(choice) for choice in _choices(self.hints[name])):
            return given  # one of the choices as it is ("32", which jsonargparse reads as the choice 32)
        if given is None and not _allows_none(self.hints[name]):  # jsonargparse would take None as "the default"
            raise UserError(f"{param(key)} is None; give {must}")
        try:
            # A copy: jsonargparse converts lists and dicts in place, and the caller's are theirs.
            parsed = self.parser.parse_object({group: {name: copy.deepcopy(given)}})[group][name]
        except Exception:  # jsonargparse's ArgumentError, or whatever a type's own check raised
            raise UserError(f"{param(key)} is {_short(given)}; give {must}") from None
        retyped = _retyped(given, parsed)
        if retyped is not None:
            what, read = retyped
            where = f"{param(key)} is" if what is given else f"{param(key)} holds"
            if isinstance(what, str):
                fix = f"give {param(key)}={_short(read)}" if what is given else f"give {_short(read)}, not the string"
                raise UserError(f"{where} the string {_short(what)}; {fix} ({must})")
            raise UserError(f"{where} {_short(what)} ({a_noun(type(what).__name__)}); give {must}")
        return _plain(parsed)


def _short(value: Any) -> str:
    """``repr(value)``, cut short for a one-line message (a long list, a tensor passed by mistake)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxtuple = 8
    return short.repr(value)


def _with_close_match(known: list[str]) -> Callable[[str], str]:
    def name(unknown: str) -> str:
        close = difflib.get_close_matches(unknown, known, n=1)
        return f"{unknown} (did you mean {close[0]}?)" if close else unknown

    return name


def describe(hint: Any) -> str:
    """What a value of type ``hint`` is, in words: ``a finite float > 0, or None``, ``one of 'adam', 'lbfgs'``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        kinds = [a for a in args if a is not type(None)]
        if all(typing.get_origin(a) is Literal for a in kinds):  # e.g. the Trainer's precision
            text = describe(Literal[tuple(v for a in kinds for v in typing.get_args(a))])
        else:
            text = " or ".join(describe(a) for a in kinds)
        return f"{text}, or None" if len(kinds) < len(args) else text
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple, typing.get_origin(typing.Sequence)):
        return f"a list whose items are each {describe(args[0])}" if args else "a list"
    if hint is bool:
        return "True or False"
    if hint in (int, float, str):
        return {int: "an int", float: "a number", str: "a string"}[hint]
    if hint is os.PathLike:
        return "a path"
    if isinstance(hint, type) and issubclass(hint, (int, float)):  # jsonargparse's restricted numbers
        # Their docstring says the rule (jsonargparse's wording; the tests pin the messages made from it).
        doc = inspect.getdoc(hint) or hint.__name__
        restricted = re.fullmatch(r"(\w+) restricted to be (.*)", doc)
        if restricted:  # jsonargparse's "int restricted to be >0 and <1": "an int > 0 and < 1"
            base, rule = restricted.groups()
            rule = re.sub(r"([<>]=?)(?=[^ =])", r"\1 ", rule)
            doc = f"{a_noun(base)} {rule}"
        return doc
    if dataclasses.is_dataclass(hint):  # a region
        return f"{a_noun(hint.__name__)} (or a dict of its fields)"
    if inspect.isclass(hint):
        return a_noun(hint.__name__)
    return str(hint)


def a_noun(noun: str) -> str:
    """``noun`` with its article: ``an int``, ``a Region``."""
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def _allows_none(hint: Any) -> bool:
    return hint is Any or hint is type(None) or (typing.get_origin(hint) is Union and type(None) in typing.get_args(hint))


def _choices(hint: Any) -> list[Any]:
    """The values of the ``Literal``s in ``hint`` (through ``Optional`` and ``Union``)."""
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    if typing.get_origin(hint) is Union:
        return [choice for kind in typing.get_args(hint) for choice in _choices(kind)]
    return []


def _paths_as_strings(value: Any) -> Any:
    """Paths as the strings the signatures take (``init_image=Path(...)``, in lists and dicts too)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(map(_paths_as_strings, value))
    if isinstance(value, dict):
        return {key: _paths_as_strings(item) for key, item in value.items()}
    return value


def _pairs(given: Any, parsed: Any) -> list[tuple[Any, Any]]:
    """The items of a list (or the fields of a dict) given, each with what it was parsed as."""
    if isinstance(given, (list, tuple)) and isinstance(parsed, (list, tuple)) and len(given) == len(parsed):
        return list(zip(given, parsed))
    if isinstance(given, dict) and isinstance(parsed, (dict, Namespace)):
        return [(item, parsed[key]) for key, item in given.items() if key in parsed]
    return []


def _retyped(given: Any, parsed: Any) -> Optional[tuple[Any, Any]]:
    """The first value (``given``'s own, or an item's, a field's) that jsonargparse read as another kind: a
    string as a number or a bool (``"3"`` as 3, ``"yes"`` as True), or anything else as a string (3 as
    ``"3"``); with what it read; None when there is none."""
    if isinstance(given, str) != isinstance(parsed, str):
        return given, parsed
    return next((pair for g, p in _pairs(given, parsed) if (pair := _retyped(g, p)) is not None), None)


def _plain(value: Any) -> Any:
    """jsonargparse's namespaces (a region given as a dict) back to dicts, as the classes take them, and
    its restricted numbers (``PositiveInt``) back to ``int`` and ``float``: checkpoints hold these
    values and load with ``weights_only``, which knows no jsonargparse class."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and type(value) not in (int, float):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, Namespace):
        return _plain(value.as_dict())
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
