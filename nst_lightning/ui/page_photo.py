"""The photo tab: the photo and up to ``MAX_PAINTINGS`` paintings as pictures (an upload, or one of the
built-in ones, shown as thumbnails: a click puts it in the picture's place, an upload replaces it), each
painting with its share of the blend; the settings in plain words, the option each sets in its info (for
the command line later); presets with their time on this machine; Stylise and Stop; the picture as it
paints, then before and after; the gallery of earlier runs, each with its settings in words and as a file.

The API keeps its parameters and outputs (``/stylize``: photo, paintings, size, steps, style strength, then
the rest): a script's events are on hidden buttons, with the photo, a file list of paintings and built-in
names as before (``page_events.both``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import gradio as gr

from nst_lightning.ui import controls, page_runs
from nst_lightning.ui.controls import COLOURS, PRESETS, STYLE_LOSSES, Defaults, Limits
from nst_lightning.ui.page_events import both, for_page, for_script, stopping, with_request
from nst_lightning.ui.page_runs import PAGE, SCRIPT, paint
from nst_lightning.ui.pictures import builtin_of
from nst_lightning.ui.runner import Run
from nst_lightning.ui.runs import SERVED, Runs
from nst_lightning.ui.speed import Speed
from nst_lightning.ui.words import BUILTIN_PAINTINGS, BUILTIN_PHOTOS, TITLES
from nst_lightning.utilities.errors import param

MAX_PAINTINGS = 3
COLOUR_WORDS = [("No: the painting's colours", "none"), ("Yes, exactly: the style in light and dark only", "luminance"),
                ("Yes, roughly: the photo's palette", "histogram")]
assert [value for _, value in COLOUR_WORDS] == list(COLOURS)
LOSS_WORDS = [("Gram matrices (as in the paper)", "gram"), ("Wasserstein (truer colours, 1.15x the time)", "wasserstein"),
              ("Sliced Wasserstein (the painting's whole texture, 3.5x the time)", "sliced_wasserstein"),
              ("Nearest neighbour (each place like one of the painting's, 1.5x the time)", "nearest_neighbour")]
assert [value for _, value in LOSS_WORDS] == list(STYLE_LOSSES)
OWN = "as configured"  # the preset that adds nothing: the server's config and the fields below
METHOD_WORDS = [("As the quality choice says", "from the preset"), ("Adam", "adam"), ("L-BFGS (the paper's)", "lbfgs")]


@dataclass
class Context:
    runs: Runs
    defaults: Defaults
    limits: Limits
    speed: Speed
    builtins: dict[str, Path]

    @property
    def served(self) -> Path:
        return self.runs.root / SERVED


def photo_tab(c: Context) -> list[tuple]:
    """The tab's components and events; what the page does when it loads (handler, inputs, outputs, and
    whether it shows an estimate: done again once this machine's speed is measured)."""
    d, limits = c.defaults, c.limits
    shown = gr.State(1)  # how many painting boxes are open
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            gr.Markdown("### 1 · Your photo")
            photo = gr.Image(str(c.builtins[d.photo]) if d.photo in c.builtins else None, label="Your photo", type="filepath",
                             sources=["upload", "clipboard"], height=260, elem_id="photo", buttons=["fullscreen"])
            photo_choices = choices(c, BUILTIN_PHOTOS, "Or try ours: click it", "photo-choices")
            gr.Markdown("### 2 · The painting")
            slots, weights = [], []
            with gr.Row(elem_classes="nst-paintings"):
                for i in range(MAX_PAINTINGS):
                    with gr.Column(min_width=110, visible=i == 0) as box:
                        first = d.paintings[0] if i == 0 and d.paintings and d.paintings[0] in c.builtins else None
                        slots.append(gr.Image(str(c.builtins[first]) if first else None, label="Painting" if i == 0 else f"Painting {i + 1}",
                                              type="filepath", sources=["upload", "clipboard"], height=170, elem_id=f"painting{i + 1}"))
                        weights.append(gr.Slider(0.1, 10, value=1, step=0.1, label="Share of the blend", visible=False, info="--data.style_weights"))
                    slots[-1].box = box  # type: ignore[attr-defined]
            blend = gr.Button("+ Blend with another painting", size="sm", elem_id="blend")
            painting_choices = choices(c, BUILTIN_PAINTINGS, "Or one of ours: click to put it in the last painting box", "painting-choices")
        with gr.Column(scale=4, min_width=300):
            gr.Markdown("### 3 · How it should look")
            preset = gr.Radio(_preset_choices(c), value=OWN, label="Quality", elem_id="preset",
                              info="Each sets the size, the steps and the method below; the times are this machine's, for a 4:3 photo")
            gr.Markdown(" · ".join(f"**{name}**: {p.gives}" for name, p in PRESETS.items()), elem_classes="nst-small")
            size = gr.Slider(
                16, limits.size, value=d.size, step=1, label="Size of the result", info="Long side in pixels · --data.image_size", elem_id="size"
            )
            steps = gr.Slider(
                1, limits.steps, value=d.steps, step=1, label="Steps: more is finer and slower", info="--trainer.max_steps", elem_id="steps"
            )
            strength = gr.Slider(0, max(100.0, d.style_weight), value=d.style_weight, step=0.5, label="How strongly the painting's style shows",
                                 info="--model.style_weight")
            scale = gr.Slider(0.1, 4, value=d.style_scale, step=0.05, label="Brush-stroke size",
                              info="1: the painting's own; 0.5 half as large, 2 twice · --data.style_scale")
            colours = gr.Radio(COLOUR_WORDS, value=d.colours, label="Keep my photo's colours", info="--model.preserve_colors")
            estimate = gr.Markdown(elem_id="estimate")
            with gr.Accordion("More options", open=False):
                optimizer = gr.Radio(METHOD_WORDS, value="from the preset", label="Method", info="--model.optimizer")
                style_loss = gr.Radio(LOSS_WORDS, value=d.style_loss, label="How style is compared", info="--model.style_loss")
                seed = gr.Number(d.seed, label="Random seed: the same seed and settings make the same picture", precision=0, info="--seed_everything")
                stages = gr.Textbox(d.stage_steps, label="Coarse to fine: steps at each smaller size first, e.g. 100, 80",
                                    info="empty: one size · --model.stage_steps")
                memory = gr.Number(d.memory_gb, label="Memory to use, in GB (0: what this machine has)", info="--model.max_memory_gb")
                bits = gr.Radio([("8 bits (usual)", "8"), ("16 bits (for editing)", "16")], value=d.bit_depth, label="Colour depth of the download",
                                info="--result.bit_depth")
            with gr.Row():
                stylise = gr.Button("Stylise", variant="primary", elem_id="stylise", min_width=120)
                stop = gr.Button("Stop", variant="stop", elem_id="stop", min_width=80)
            status = gr.HTML(elem_id="status")
    gr.Markdown("### 4 · The result")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            preview = gr.Image(label="As it paints", format="png", type="numpy", interactive=False, height=360, elem_id="preview", visible=False)
            compare = gr.ImageSlider(label="Before and after: drag the line", type="filepath", interactive=False, visible=False, max_height=520,
                                     elem_id="compare", buttons=["fullscreen", "download"])
        with gr.Column(scale=4, min_width=300):
            about = gr.Markdown("Your picture appears here as it paints; at the end, beside your photo.", elem_id="about")
            result = gr.File(label="Download the picture (PNG)", interactive=False, height=60, elem_id="result", visible=False)
            settings = gr.DownloadButton("Download its settings (YAML, for nst-lightning fit --config)", visible=False, elem_id="settings", size="sm")
            with gr.Accordion("Loss curve", open=False):
                loss = gr.LinePlot(x="step", y="loss", label="Loss: lower is closer to the photo and the painting", height=220)
            with gr.Accordion("For the command line", open=False):
                folder = gr.Markdown(elem_id="folder")
    gr.Markdown("### Earlier runs · click one to see it, continue it, or start from it")
    gallery = gr.Gallery(label="Earlier runs", columns=6, height=240, allow_preview=False, fit_columns=False, object_fit="contain", elem_id="gallery")
    with gr.Row():
        # A textbox, not a State: the API's continue and start_from_result take the run's name (checked by Runs.find).
        chosen = gr.Textbox(label="Chosen run", interactive=False, min_width=200)
        more = gr.Number(d.steps, label="More steps", precision=0, minimum=1, min_width=120)
    with gr.Row():
        go_on = gr.Button("Continue it for that many more steps", min_width=200)
        restart = gr.Button("Start a new run from its picture, with the settings above", min_width=200)

    # For scripts: the parameters and outputs the API has always had, on hidden buttons.
    with gr.Row(visible=False):
        paintings = gr.File(label="Paintings", file_count="multiple", type="filepath")
        builtin_photo = gr.Dropdown(list(TITLES), value=d.photo, label="Built-in photo")
        builtin_paintings = gr.CheckboxGroup(list(TITLES), value=d.paintings, label="Built-in paintings")
        painting_weights = gr.Textbox("", label="Blend weights, e.g. 2, 1")
        script_buttons = [gr.Button(name) for name in ("stylize", "continue", "start_from_result")]

    outputs = {"result": result, "preview": preview, "status": status, "loss": loss, "folder": folder, "gallery": gallery, "compare": compare,
               "about": about, "settings": settings, "chosen": chosen}
    page_out, script_out = [outputs[n] for n in PAGE], [outputs[n] for n in SCRIPT]
    settings_in = [size, steps, strength, scale, colours, preset, optimizer, style_loss, seed, stages, memory, bits]

    def make_fresh(photo_path: Optional[str], styles: list[str], blend_weights: Any, values: tuple) -> Any:
        def make() -> Run:
            size_, steps_, _, scale_ = values[:4]
            limits.check(size_, steps_, scale_)
            content, chosen_styles = controls.inputs(photo_path, None, styles, None)
            long_side = controls.whole(size_, param("data.image_size")) if size_ is not None else None
            return c.runs.fresh(content, chosen_styles, controls.options(*values, weights=blend_weights), long_side)

        return make

    def page_fresh(photo: Any, *rest: Any) -> Iterator[tuple]:
        *values, request = rest
        pictures, shares, count = values[:MAX_PAINTINGS], values[MAX_PAINTINGS : 2 * MAX_PAINTINGS], values[2 * MAX_PAINTINGS]
        chosen_styles = [(chosen_picture(c, v), w) for v, w in list(zip(pictures, shares))[: int(count or 1)] if chosen_picture(c, v)]
        blend_weights = [w for _, w in chosen_styles] if len(chosen_styles) > 1 else None
        controls_ = tuple(values[2 * MAX_PAINTINGS + 1 :])
        make = make_fresh(chosen_picture(c, photo), [s for s, _ in chosen_styles], blend_weights, controls_)
        yield from for_page(paint(make, c.runs, controls.preview_every(controls_[1]), request, c.speed, not _staged(controls_[9])), PAGE)

    # The API's parameters are these names, in this order: photo, painting(s), size, steps, style strength,
    # then the rest, each with the page's default (gradio_client may leave them out).
    def fresh(photo: Any, painting: Any, size: Any, steps: Any, style_strength: Any, builtin_photo: str, builtin_paintings: list,
              style_scale: Any, colours: str, preset: str, optimizer: str, style_loss: str, seed: Any, stage_steps: str,
              memory_gb: Any, bit_depth: str, painting_weights: str, request: gr.Request) -> Iterator[tuple]:
        uploads = [chosen_picture(c, v) for v in page_runs.as_list(painting)]
        names = builtin_paintings if isinstance(builtin_paintings, (list, tuple)) else [builtin_paintings] if builtin_paintings else []
        values = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb, bit_depth)

        def make() -> Run:
            limits.check(size, steps, style_scale)
            content, styles = controls.inputs(chosen_picture(c, photo), builtin_photo, [u for u in uploads if u], names)
            long_side = controls.whole(size, param("data.image_size")) if size is not None else None
            return c.runs.fresh(content, styles, controls.options(*values, weights=painting_weights), long_side)

        yield from for_script(paint(make, c.runs, controls.preview_every(steps), request, c.speed, not _staged(stage_steps)), SCRIPT)

    def continuing(run: str, more_steps: Any, request: gr.Request) -> Iterator[dict]:
        def make() -> Run:
            limits.check(steps=more_steps, steps_name="more steps")
            return c.runs.resume(run, controls.whole(more_steps or 0, "more steps"))

        return paint(make, c.runs, controls.preview_every(more_steps), request, c.speed)

    def from_result(run: str, values: tuple, request: gr.Request) -> Iterator[dict]:
        def make() -> Run:
            limits.check(values[0], values[1], values[3])
            return c.runs.from_result(run, controls.options(*values))

        return paint(make, c.runs, controls.preview_every(values[1]), request, c.speed, not _staged(values[9]))

    def page_continue(run: str, more_steps: Any, request: gr.Request) -> Iterator[tuple]:
        yield from for_page(continuing(run, more_steps, request), PAGE)

    def script_continue(run: str, more_steps: Any, request: gr.Request) -> Iterator[tuple]:
        yield from for_script(continuing(run, more_steps, request), SCRIPT)

    def page_from_result(run: str, *rest: Any) -> Iterator[tuple]:
        yield from for_page(from_result(run, tuple(rest[:-1]), rest[-1]), PAGE)

    def start_from_result(run: str, size: Any, steps: Any, style_strength: Any, style_scale: Any, colours: str, preset: str,
                          optimizer: str, style_loss: str, seed: Any, stage_steps: str, memory_gb: Any, bit_depth: str,
                          request: gr.Request) -> Iterator[tuple]:
        values = (size, steps, style_strength, style_scale, colours, preset, optimizer, style_loss, seed, stage_steps, memory_gb, bit_depth)
        yield from for_script(from_result(run, values, request), SCRIPT)

    api_inputs = [photo, paintings, size, steps, strength, builtin_photo, builtin_paintings, *settings_in[3:], painting_weights]
    page_in = [photo, *slots, *weights, shown, *settings_in]
    both(stylise, script_buttons[0], "stylize", (with_request(page_fresh, len(page_in)), page_in, page_out),
         (fresh, api_inputs, script_out), status)
    both(go_on, script_buttons[1], "continue", (page_continue, [chosen, more], page_out), (script_continue, [chosen, more], script_out), status)
    both(restart, script_buttons[2], "start_from_result", (with_request(page_from_result, 1 + len(settings_in)), [chosen, *settings_in], page_out),
         (start_from_result, [chosen, *settings_in], script_out), status)
    stop.click(stopping, None, status, api_name="stop", concurrency_limit=None)

    # The pictures: a built-in choice takes the photo's (or the last painting box's) place; boxes open for a blend.
    quick = {"queue": False, "api_visibility": "private"}
    def put_photo(evt: gr.SelectData) -> Any:
        return picked(c, BUILTIN_PHOTOS, evt)

    photo_choices.select(put_photo, None, photo, **quick)

    def put_painting(count: int, evt: gr.SelectData) -> list:
        chosen_one = picked(c, BUILTIN_PAINTINGS, evt)
        return [chosen_one if i == int(count or 1) - 1 else gr.skip() for i in range(MAX_PAINTINGS)]

    painting_choices.select(put_painting, shown, slots, **quick)

    def open_box(count: int) -> list:
        count = min(MAX_PAINTINGS, int(count or 1) + 1)
        return [count, *[gr.update(visible=i < count) for i in range(MAX_PAINTINGS)], *[gr.update(visible=i < count) for i in range(MAX_PAINTINGS)],
                gr.update(visible=count < MAX_PAINTINGS)]

    blend.click(open_box, shown, [shown, *[s.box for s in slots], *weights, blend], **quick)  # type: ignore[attr-defined]

    # Presets put their size, steps and stages in the fields; the estimate follows the fields.
    def apply_preset(name: str) -> list:
        p = PRESETS.get(name)
        if p is None:
            return [gr.skip()] * 5
        return [min(p.size, limits.size), min(p.steps, limits.steps), ", ".join(map(str, p.stages)), "from the preset", p.style_loss or gr.skip()]

    preset.input(apply_preset, preset, [size, steps, stages, optimizer, style_loss], **quick)

    def timing(size_: Any, steps_: Any, stage_steps: Any, loss: Any) -> str:
        try:
            side, count = int(float(size_)), int(float(steps_))
            staged = [int(s) for s in str(stage_steps or "").replace("[", "").replace("]", "").split(",") if s.strip()]
        except (TypeError, ValueError):
            return ""
        cost = STYLE_LOSSES[loss].cost if loss in STYLE_LOSSES else 1.0
        return f"This run: **{c.speed.estimate(side, count, staged, cost)}**" + (" on this machine" if c.speed.measured else "")

    for field in (size, steps, stages, style_loss):
        field.change(timing, [size, steps, stages, style_loss], estimate, **quick, trigger_mode="always_last")

    def refreshed(size_: Any, steps_: Any, stage_steps: Any, loss: Any) -> list:
        return [gr.update(choices=_preset_choices(c)), timing(size_, steps_, stage_steps, loss)]

    def choose(evt: gr.SelectData) -> list:
        shown = page_runs.choose(c.runs, evt.index)
        return [shown.get(name, gr.skip()) for name in ("compare", "preview", "about", "settings", "chosen", "result")]

    gallery.select(choose, None, [compare, preview, about, settings, chosen, result], **quick)
    return [(lambda: page_runs.gallery(c.runs), None, gallery, False), (refreshed, [size, steps, stages, style_loss], [preset, estimate], True)]


def choices(c: Context, names: tuple[str, ...], label: str, elem_id: str) -> gr.Gallery:
    return gr.Gallery([(str(c.builtins[n]), TITLES[n]) for n in names], label=label, columns=4, rows=1, height=175, allow_preview=False,
                      object_fit="cover", fit_columns=False, elem_id=elem_id, elem_classes="nst-choices", buttons=[])


def picked(c: Context, names: tuple[str, ...], evt: gr.SelectData) -> Any:
    index = evt.index if isinstance(evt.index, int) else -1
    return str(c.builtins[names[index]]) if 0 <= index < len(names) else gr.skip()


def chosen_picture(c: Context, value: Any) -> Optional[str]:
    """The picture a box holds: a built-in one by name (``builtin:NAME``), else the upload's path on the
    server (in Gradio's upload folder, which Gradio checked)."""
    path = str(value["path"]) if isinstance(value, dict) and value.get("path") else None  # a bare string is a name, never a server path
    return builtin_of(path, c.served) or path


def _staged(stage_steps: Any) -> bool:
    return bool(str(stage_steps or "").strip().strip("[]").strip())


def _preset_choices(c: Context) -> list[tuple[str, str]]:
    choices = []
    for name, p in PRESETS.items():
        side, steps = min(p.size, c.limits.size), min(p.steps, c.limits.steps)
        time = c.speed.estimate(side, steps, p.stages, p.cost)
        choices.append((f"{name} · {side} px · {time}", name))
    return [*choices, ("Your own: as set below", OWN)]

