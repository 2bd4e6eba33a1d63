"""What crafted YAML costs PyYAML, and what the bounds of ``run/_config_limits.py`` cost instead.

    python benchmarks/yaml_limits.py

For each text: the seconds of PyYAML's whole event stream (libyaml's parser, a state machine: its
scanner's time grows with the square of the nesting), whether building the document (``safe_load``,
which recurses: libyaml's and PyYAML's pure-Python one, which ``yaml.safe_load`` is) raises
``RecursionError``, and the seconds of ``yaml_shape`` (the event stream read no
further than ``MAX_YAML_DEPTH`` + 1 levels) with what ``check_yaml_text`` says. One run each, on
whatever the machine is doing: compare the columns of one run.
"""

from __future__ import annotations

import time

import yaml

from nst_lightning.run._config_limits import MAX_YAML_DEPTH, check_yaml_text, yaml_shape
from nst_lightning.utilities.errors import UserError

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TEXTS = {
    "a: [ (malformed)": "a: [",
    "20,000 [ (unclosed)": "[" * 20_000,
    "2,400 [ ] (closed)": "a: " + "[" * 2_400 + "]" * 2_400,
    "1 MB of [": "[" * 1_000_000,
    "20,000 '- ' (block)": "- " * 20_000 + "x",
    "alias bomb (9 levels of 9)": 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")),
}


def seconds(work) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        outcome = work()
    except RecursionError:
        outcome = "RecursionError"
    except yaml.YAMLError as err:
        outcome = type(err).__name__
    except UserError as err:
        outcome = str(err).split(" ", 1)[1][:60]
    return time.perf_counter() - start, str(outcome)


def main() -> None:
    print(f"MAX_YAML_DEPTH = {MAX_YAML_DEPTH}; loader {LOADER.__name__}")
    print("| text | bytes | whole event stream s | libyaml load | safe_load | bounded scan s | check_yaml_text says |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, text in TEXTS.items():
        big, bomb, flow_deep = len(text) > 100_000, "alias" in name, text.startswith("[" * 10_000)
        stream = (float("nan"), "") if big else seconds(lambda: sum(1 for _ in yaml.parse(text, Loader=LOADER)))
        skip = "not run: expands" if bomb else "not run: too slow" if big else None
        load = skip or seconds(lambda: type(yaml.load(text, Loader=LOADER)).__name__)[1]
        # The scanners are quadratic in flow depth: libyaml on 1 MB, PyYAML's Python one on 20,000 levels, not run.
        python = skip or ("not run: too slow" if flow_deep else seconds(lambda: type(yaml.safe_load(text)).__name__)[1])
        scan, _ = seconds(lambda: yaml_shape(text))
        _, said = seconds(lambda: check_yaml_text(text, "--config X"))
        print(f"| {name} | {len(text):,} | {stream[0]:.3f} | {load} | {python} | {scan:.4f} | {said} |")


if __name__ == "__main__":
    main()
