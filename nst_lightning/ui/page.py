"""The page: ``build(runs, defaults)`` makes the Gradio ``Blocks``: inputs and the main controls in view,
the rest in an accordion, Stylise and Stop, the live picture, progress and loss curve, the result with
its download, and the gallery of earlier runs with "continue" and "start from this result".

Every event that starts a run shares one concurrency slot (``concurrency_id="run"``, limit 1): one run
at a time, the others queued, their place in the queue shown by Gradio on each waiting page. Stop is
outside that queue, so it is heard while a run holds the slot.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import gradio as gr

from nst_lightning.inputs.sources import BUILTIN_IMAGES
from nst_lightning.ui import controls, live
from nst_lightning.ui.controls import COLOURS, OPTIMIZERS, PRESETS, STYLE_LOSSES, Defaults, Progress
from nst_lightning.ui.runs import Outcome, Run, Runs, execute
from nst_lightning.utilities.errors import UserError

PREVIEW_EVERY_S = 0.3  # at most this often a new picture goes to the browser (a GPU can make them faster)
RUN = {"concurrency_limit": 1, "concurrency_id": "run"}


def build(runs: Runs, defaults: Defaults) -> gr.Blocks:
    d = defaults
    with gr.Blocks(title="nst-lightning", analytics_enabled=False) as page:
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
                content, styles = controls.inputs(photo, builtin_photo, _files(painting), builtin_paintings)
                settings_ = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb,
                             bit_depth)
                return runs.fresh(content, styles, controls.options(*settings_))

            yield from _stream(make, runs, controls.preview_every(steps), request)

        def continued(run: str, more_steps: Any, request: gr.Request) -> Iterator[tuple]:
            yield from _stream(lambda: runs.resume(run, int(more_steps or 0)), runs, controls.preview_every(more_steps), request)

        def from_result(run: str, size: Any, steps: Any, style_strength: Any, style_scale: Any, colours: str, preset: str,
                        optimizer: str, style_loss: str, seed: Any, stage_steps: str, memory_gb: Any, bit_depth: str,
                        request: gr.Request) -> Iterator[tuple]:
            settings_ = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb,
                         bit_depth)
            yield from _stream(lambda: runs.from_result(run, controls.options(*settings_)), runs, controls.preview_every(steps), request)

        def stopping(request: gr.Request) -> Any:
            if live.stop(request.session_hash or ""):
                return "<p>Stopping at the end of this step; the checkpoint and the image so far are saved…</p>"
            return gr.skip()

        def choose(evt: gr.SelectData) -> tuple[str, str]:
            return _choose(runs, evt.index)

        api_inputs = [photo, paintings, size, steps, strength, builtin_photo, builtin_paintings, *settings[3:]]
        stylise.click(fresh, api_inputs, shown, api_name="stylize", **RUN)
        go_on.click(continued, [chosen, more], shown, api_name="continue", **RUN)
        restart.click(from_result, [chosen, *settings], shown, api_name="start_from_result", **RUN)
        stop.click(stopping, None, status, api_name="stop", concurrency_limit=None)
        gallery.select(choose, None, [chosen, about], api_visibility="private")
        page.load(lambda: _gallery(runs), None, gallery, api_visibility="private")
    return page


def _stream(make: Callable[[], Run], runs: Runs, every: int, request: gr.Request) -> Iterator[tuple]:
    """A run's updates as the page's outputs; its one-line error as ``gr.Error`` (never a traceback)."""
    try:
        run = make()
    except UserError as err:
        raise gr.Error(f"nst_lightning: error: {err.for_cli()}", print_exception=False) from None
    progress, sent = Progress(run.start_step), 0.0
    yield None, None, progress.bar(), progress.frame(), "", gr.skip()
    for update in execute(run, every, request.session_hash or ""):
        if isinstance(update, Outcome):
            break
        progress.add(update)
        if update.image is not None and time.monotonic() - sent >= PREVIEW_EVERY_S:
            sent = time.monotonic()
            yield None, progress.image, progress.bar(), progress.frame(), "", gr.skip()
    outcome: Outcome = update
    yield (str(outcome.result) if outcome.result else None, progress.image, controls.ending(outcome), progress.frame(),
           controls.where(outcome), _gallery(runs))
    if outcome.error is not None:
        raise gr.Error(outcome.error, print_exception=False)


def _gallery(runs: Runs) -> list[tuple[str, str]]:
    return [(str(image), f"{name}: {record.get('steps', 0)} steps") for name, image, record in runs.earlier()]


def _choose(runs: Runs, index: Any) -> tuple[str, str]:
    earlier = runs.earlier()
    if not isinstance(index, int) or not 0 <= index < len(earlier):
        return "", ""
    name, _, record = earlier[index]
    args = " ".join(a for a in record.get("args", [])[1:])
    return name, f"**{name}**, {record.get('steps', 0)} steps: `{args}`"


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]
