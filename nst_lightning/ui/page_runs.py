"""What the photo tab shows of a run, as it goes and after: ``paint`` streams a run (the picture every few
steps, progress with an ETA, the loss) and ends with the result beside the photo, its settings in words and
as a file to download; ``shown_run`` is the same for a run picked in the gallery of earlier runs.

Updates are dicts of output names (``NAMES``) to values; the page and the API each take the ones they show
(``page_events``). A refusal is ``page_events.Refused`` with its one line, the server's paths taken out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import gradio as gr

from nst_lightning.ui import controls, words
from nst_lightning.ui.controls import Progress
from nst_lightning.ui.page_events import Refused, started
from nst_lightning.ui.pictures import before
from nst_lightning.ui.runner import Outcome, Run, execute
from nst_lightning.ui.runs import Runs
from nst_lightning.ui.speed import Speed
from nst_lightning.utilities.errors import UserError

PREVIEW_EVERY_S = 0.3  # at most this often a new picture goes to the browser (a GPU can make them faster)
# The outputs of the API's run events, in this order (scripts index them: result[0] is the picture).
SCRIPT = ["result", "preview", "status", "loss", "folder", "gallery"]
PAGE = [*SCRIPT, "compare", "about", "settings", "chosen"]


def paint(make: Callable[[], Run], runs: Runs, every: int, request: gr.Request, speed: Speed, timed: bool = True) -> Iterator[dict]:
    """A run's updates; ``timed``: its speed refines the page's estimates (a run at one size)."""
    stopped = started(request)
    if stopped is not None:
        yield stopped
        return
    try:
        run = make()
    except UserError as err:
        raise Refused(without_paths(runs, None, f"nst_lightning: error: {err.for_cli()}")) from None
    progress, sent = Progress(run.start_step), 0.0
    yield {"result": None, "preview": gr.update(value=None, visible=True), "status": progress.bar(), "loss": progress.frame(), "folder": "",
           "compare": gr.update(visible=False)}
    for update in execute(run, every, request.session_hash or ""):
        if isinstance(update, Outcome):
            break
        progress.add(update)
        if update.image is not None and time.monotonic() - sent >= PREVIEW_EVERY_S:
            sent = time.monotonic()
            yield {"result": None, "preview": progress.image, "status": progress.bar(), "loss": progress.frame(), "folder": ""}
    outcome: Outcome = update
    if timed and progress.timing() is not None:
        speed.record(*progress.timing())
    result = runs.served(run.directory, outcome.steps, outcome.result) if outcome.result else None
    shown = shown_run(runs, run.directory.name, result, outcome.steps) if result else {"preview": gr.update(visible=True)}
    # The picture as it last painted stays (scripts take it), hidden where before and after replace it.
    yield {"loss": progress.frame(), "folder": controls.where(outcome), "gallery": gallery(runs), **shown,
           "preview": gr.update(value=progress.image, visible=shown["preview"]["visible"]),
           "result": gr.update(value=str(result) if result else None, visible=bool(result)), "status": controls.ending(outcome)}
    if outcome.error is not None:
        raise Refused(without_paths(runs, run.directory, outcome.error))


def shown_run(runs: Runs, name: str, picture: Optional[Path], steps: int) -> dict:
    """A run as the result area shows it: before and after, its settings in words, its downloads."""
    directory = runs.root / name
    config = words.read_config(directory)
    photo = before(directory, picture) if picture is not None else None
    settings = None
    if config is not None and runs.uploads is not None:
        settings = runs.uploads / "settings" / f"nst-settings-{name}.yaml"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(words.settings_yaml(config, name, steps))
    return {
        "compare": gr.update(value=(str(photo), str(picture)), visible=True) if photo and picture else gr.update(visible=False),
        "preview": gr.update(visible=not (photo and picture)),
        "about": f"**Run {name}**  \n{words.describe(config, steps)}" if config else f"**Run {name}**, {steps} steps",
        "settings": gr.update(value=str(settings), visible=True) if settings else gr.update(visible=False),
        "chosen": name,
        "result": gr.update(value=str(picture) if picture else None, visible=bool(picture)),
    }


def gallery(runs: Runs) -> list[tuple[str, str]]:
    return [(str(image), f"{name}: {record.get('steps', 0)} steps") for name, image, record in runs.earlier()]


def choose(runs: Runs, index: Any) -> dict:
    earlier = runs.earlier()
    if not isinstance(index, int) or not 0 <= index < len(earlier):
        return {}
    name, picture, record = earlier[index]
    return shown_run(runs, name, picture, int(record.get("steps", 0)))


def without_paths(runs: Runs, directory: Optional[Path], line: str) -> str:
    places: list[tuple[Path, str]] = [(runs.root, "")]
    if directory is not None:
        places.append((directory, directory.name))
    if runs.uploads is not None:
        places.append((runs.uploads, "your upload"))
    return words.without_paths(line, places)


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else [value]
