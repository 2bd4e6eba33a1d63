"""The page: ``build(runs, defaults)`` makes the Gradio ``Blocks``: inputs and the main controls in view,
the rest in an accordion, Stylise and Stop, the live picture, progress and loss curve, the result with
its download, and the gallery of earlier runs with "continue" and "start from this result".

Every event that starts a run shares one concurrency slot (``concurrency_id="run"``, limit 1): one run
at a time, the others queued, their place in the queue shown by Gradio on each waiting page. Stop is
outside that queue, so it is heard while a run holds the slot; each run's request is noted as it joins
the queue (a validator, which Gradio calls then), so that Stop also keeps a waiting one from starting.

The events that start runs take their inputs as the client sent them (``preprocess=False``): a value that
Gradio could not convert would be its traceback in the server's log and no message for the client; here
every refusal is one line, in the log and as the client's error (``gr.Error``).

What is served: the runs' pictures in ``runs.SERVED`` (a static path: served as they are, not copied),
and what Gradio keeps itself (uploads and previews, in its upload folder, removed after ``KEPT_S``).
No other file of a run is reachable.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable, Iterator, Optional

import gradio as gr

from nst_lightning.inputs.sources import BUILTIN_IMAGES
from nst_lightning.ui import controls, live
from nst_lightning.ui.controls import COLOURS, OPTIMIZERS, PRESETS, STYLE_LOSSES, Defaults, Limits, Progress
from nst_lightning.ui.runner import Outcome, Run, execute
from nst_lightning.ui.runs import Runs
from nst_lightning.utilities.errors import UserError, param

PREVIEW_EVERY_S = 0.3  # at most this often a new picture goes to the browser (a GPU can make them faster)
RUN = {"concurrency_limit": 1, "concurrency_id": "run", "preprocess": False}
# Uploads and previews in Gradio's upload folder are removed this long after they were made (checked every
# KEPT_S / 6): a page left open longer asks for its uploads again. Its runs keep copies of their inputs.
KEPT_S = 3600
STOPPED_WAITING = "<p>Stopped before it started: nothing was run.</p>"


def build(runs: Runs, defaults: Defaults, limits: Limits) -> gr.Blocks:
    d = defaults
    with gr.Blocks(title="nst-lightning", analytics_enabled=False, delete_cache=(KEPT_S // 6, KEPT_S)) as page:
        gr.Markdown("# Neural style transfer\nA photo, one or more paintings, and Stylise. Every run is a run directory that the CLI can resume.")
        with gr.Row():
            with gr.Column():
                photo = gr.File(label="Photo", file_count="single", type="filepath", height=120, elem_id="photo")
                builtin_photo = gr.Dropdown(list(BUILTIN_IMAGES), value=d.photo, label="or a built-in photo")
                paintings = gr.File(label="Paintings (several are blended)", file_count="multiple", type="filepath", height=120, elem_id="paintings")
                builtin_paintings = gr.CheckboxGroup(list(BUILTIN_IMAGES), value=d.paintings, label="or built-in paintings (used when none is uploaded)")
            with gr.Column():
                size = gr.Number(d.size, label="Size: long side in px (--data.image_size)", precision=0)
                steps = gr.Number(d.steps, label="Steps (--trainer.max_steps)", precision=0)
                strength = gr.Number(d.style_weight, label="Style strength (--model.style_weight)")
                scale = gr.Number(d.style_scale, label="Style scale: stroke size (--data.style_scale)")
                colours = gr.Radio(list(COLOURS), value=d.colours, label="Keep the photo's colours (--model.preserve_colors)")
                preset = gr.Radio(list(PRESETS), value=next(iter(PRESETS)), label="Quality preset")
                with gr.Accordion("More options", open=False):
                    optimizer = gr.Radio(list(OPTIMIZERS), value=OPTIMIZERS[0], label="Optimizer (--model.optimizer)")
                    style_loss = gr.Radio(list(STYLE_LOSSES), value=d.style_loss, label="Style loss (--model.style_loss)")
                    seed = gr.Number(d.seed, label="Seed (--seed_everything)", precision=0)
                    stages = gr.Textbox(d.stage_steps, label="Coarse-to-fine: steps per stage, e.g. 100, 80 (--model.stage_steps)")
                    memory = gr.Number(d.memory_gb, label="Memory budget in GB, 0 for this machine's (--model.max_memory_gb)")
                    bits = gr.Radio(["8", "16"], value=d.bit_depth, label="Result's bits per channel: 16 for a 16-bit PNG (--result.bit_depth)")
                with gr.Row():
                    stylise = gr.Button("Stylise", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
        with gr.Row():
            with gr.Column():
                preview = gr.Image(label="As it paints", format="png", type="numpy", interactive=False, height=320, elem_id="preview")
                status = gr.HTML(elem_id="status")
            with gr.Column():
                loss = gr.LinePlot(x="step", y="loss", label="Loss", height=240)
                result = gr.File(label="Result (PNG)", interactive=False, height=80, elem_id="result")
                folder = gr.Markdown()
        gr.Markdown("## Earlier runs")
        gallery = gr.Gallery(label="Earlier runs (pick one)", columns=6, height=260, allow_preview=False, fit_columns=False, object_fit="contain")
        # A textbox, not a State: the API's continue and start_from_result take the run's name (checked by Runs.find).
        chosen = gr.Textbox(label="Chosen run", interactive=False)
        about = gr.Markdown()
        with gr.Row():
            more = gr.Number(d.steps, label="More steps", precision=0)
            go_on = gr.Button("Continue for that many more steps")
            restart = gr.Button("Start from this result (with the controls above)")

        settings = [size, steps, strength, scale, colours, preset, optimizer, style_loss, seed, stages, memory, bits]
        shown = [result, preview, status, loss, folder, gallery]

        # The API's parameters are these names, in this order: photo, painting(s), size, steps, style strength,
        # then the rest, each with the page's default (gradio_client may leave them out).
        def fresh(photo: Any, painting: Any, size: Any, steps: Any, style_strength: Any, builtin_photo: str, builtin_paintings: list,
                  style_scale: Any, colours: str, preset: str, optimizer: str, style_loss: str, seed: Any, stage_steps: str,
                  memory_gb: Any, bit_depth: str, request: gr.Request) -> Iterator[tuple]:
            def make() -> Run:
                limits.check(size, steps, style_scale)
                content, styles = controls.inputs(_file(photo), builtin_photo, _files(painting), builtin_paintings)
                settings_ = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb,
                             bit_depth)
                long_side = controls.whole(size, param("data.image_size")) if size is not None else None
                return runs.fresh(content, styles, controls.options(*settings_), long_side)

            yield from _stream(make, runs, controls.preview_every(steps), request)

        def continued(run: str, more_steps: Any, request: gr.Request) -> Iterator[tuple]:
            def make() -> Run:
                limits.check(steps=more_steps, steps_name="more steps")
                return runs.resume(run, controls.whole(more_steps or 0, "more steps"))

            yield from _stream(make, runs, controls.preview_every(more_steps), request)

        def from_result(run: str, size: Any, steps: Any, style_strength: Any, style_scale: Any, colours: str, preset: str,
                        optimizer: str, style_loss: str, seed: Any, stage_steps: str, memory_gb: Any, bit_depth: str,
                        request: gr.Request) -> Iterator[tuple]:
            def make() -> Run:
                limits.check(size, steps, style_scale)
                settings_ = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb,
                             bit_depth)
                return runs.from_result(run, controls.options(*settings_))

            yield from _stream(make, runs, controls.preview_every(steps), request)

        def stopping(request: gr.Request) -> Any:
            running, waiting = live.stop(request.session_hash or "")
            if running:
                return "<p>Stopping at the end of this step; the checkpoint and the image so far are saved…</p>"
            return STOPPED_WAITING if waiting else gr.skip()

        def choose(evt: gr.SelectData) -> tuple[str, str]:
            return _choose(runs, evt.index)

        api_inputs = [photo, paintings, size, steps, strength, builtin_photo, builtin_paintings, *settings[3:]]
        stylise.click(fresh, api_inputs, shown, api_name="stylize", validator=_noting(fresh), **RUN)
        go_on.click(continued, [chosen, more], shown, api_name="continue", validator=_noting(continued), **RUN)
        restart.click(from_result, [chosen, *settings], shown, api_name="start_from_result", validator=_noting(from_result), **RUN)
        stop.click(stopping, None, status, api_name="stop", concurrency_limit=None)
        gallery.select(choose, None, [chosen, about], api_visibility="private")
        page.load(lambda: _gallery(runs), None, gallery, api_visibility="private")
    return page


def _noting(handler: Callable) -> Callable:
    """Gradio's validator for ``handler``'s event: called with the same inputs and request (its signature is
    ``handler``'s) as the request joins the queue. It notes the request, so that Stop can keep it from
    starting, and refuses nothing (a refusal is the handler's one line)."""

    @functools.wraps(handler)
    def noted(*values: Any) -> list[None]:
        request = values[-1]  # the handler's last parameter, its gr.Request
        live.queued(request.session_hash or "")
        return [None] * (len(values) - 1)

    return noted


def _stream(make: Callable[[], Run], runs: Runs, every: int, request: gr.Request) -> Iterator[tuple]:
    """A run's updates as the page's outputs; its one-line error as ``gr.Error`` (never a traceback)."""
    session = request.session_hash or ""
    if not live.starting(session):  # its page pressed Stop while it waited
        yield gr.skip(), gr.skip(), STOPPED_WAITING, gr.skip(), gr.skip(), gr.skip()
        return
    try:
        run = make()
    except UserError as err:
        raise _refused(f"nst_lightning: error: {err.for_cli()}") from None
    progress, sent = Progress(run.start_step), 0.0
    yield None, None, progress.bar(), progress.frame(), "", gr.skip()
    for update in execute(run, every, session):
        if isinstance(update, Outcome):
            break
        progress.add(update)
        if update.image is not None and time.monotonic() - sent >= PREVIEW_EVERY_S:
            sent = time.monotonic()
            yield None, progress.image, progress.bar(), progress.frame(), "", gr.skip()
    outcome: Outcome = update
    result = str(runs.served(run.directory, outcome.steps, outcome.result)) if outcome.result else None
    yield result, progress.image, controls.ending(outcome), progress.frame(), controls.where(outcome), _gallery(runs)
    if outcome.error is not None:
        raise _refused(outcome.error)


def _refused(line: str) -> gr.Error:
    """A refusal: its one line in the server's log (the terminal's stream: while a run goes, ``sys.stderr``
    is that run's log) and, as the error, to the client."""
    print(line, file=sys.__stderr__, flush=True)
    return gr.Error(line, print_exception=False)


def _gallery(runs: Runs) -> list[tuple[str, str]]:
    return [(str(image), f"{name}: {record.get('steps', 0)} steps") for name, image, record in runs.earlier()]


def _choose(runs: Runs, index: Any) -> tuple[str, str]:
    earlier = runs.earlier()
    if not isinstance(index, int) or not 0 <= index < len(earlier):
        return "", ""
    name, _, record = earlier[index]
    args = " ".join(a for a in record.get("args", [])[1:])
    return name, f"**{name}**, {record.get('steps', 0)} steps: `{args}`"


def _file(value: Any) -> Optional[str]:
    """An upload's path on the server, from the file data Gradio checked (it is in its upload folder)."""
    return str(value["path"]) if isinstance(value, dict) and value.get("path") else None


def _files(value: Any) -> list[str]:
    return [path for v in (value if isinstance(value, list) else [value]) if (path := _file(v))]
