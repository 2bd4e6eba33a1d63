"""The video tab: a clip and a painting, the settings of its frames in plain words, Stylise and Stop; the
frames as they are finished, with a counter and an ETA; the finished clip, with its sound, to play and
download; Continue for a clip that was stopped (the video command's own resume, ``clips.py``).

The same run slot, queue, Stop and limits as the photo tab's runs (``page_events``, ``controls.Limits``):
``--max-size`` for the frames' size, ``--max-steps`` for the clip's steps in all (its first frame's and
each later one's), ``--max-storage-gb`` before it starts. For scripts: ``/stylize_video`` (clip, painting,
size, first frame's steps, each later frame's steps, frames, style strength) and ``/continue_video``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import gradio as gr

from nst_lightning.ui import clips, controls
from nst_lightning.ui.clips import ClipOutcome, ClipProgress, ClipRun
from nst_lightning.ui.page_events import Refused, both, for_page, for_script, started, stopping
from nst_lightning.ui.page_photo import Context, choices, chosen_picture, picked
from nst_lightning.ui.page_runs import without_paths
from nst_lightning.ui.speed import duration
from nst_lightning.ui.words import BUILTIN_PAINTINGS, TITLES
from nst_lightning.utilities.errors import UserError

SCRIPT = ["video", "frame", "status", "frames", "clip"]
CLIP_SIDE = 256  # a clip's frames by default: a 5 s clip is 125 runs


def video_tab(c: Context) -> list[tuple]:
    """The tab's components and events; what the page does when it loads (as ``page_photo.photo_tab``)."""
    d, limits = c.defaults, c.limits
    side, first_steps = min(d.size, CLIP_SIDE, limits.size), min(d.steps, limits.steps)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            gr.Markdown("### 1 · Your clip")
            clip = gr.Video(label="Your clip (MP4, MOV, WebM)", sources=["upload"], height=260, elem_id="clip")
            gr.Markdown("### 2 · The painting")
            first = d.paintings[0] if d.paintings and d.paintings[0] in c.builtins else None
            painting = gr.Image(str(c.builtins[first]) if first else None, label="Painting", type="filepath", sources=["upload", "clipboard"],
                                height=170, elem_id="clip-painting")
            painting_choices = choices(c, BUILTIN_PAINTINGS, "Or one of ours: click it", "clip-painting-choices")
        with gr.Column(scale=4, min_width=300):
            gr.Markdown("### 3 · How it should look")
            size = gr.Slider(16, limits.size, value=side, step=1, label="Size of the frames", info="Long side in pixels · --data.image_size",
                             elem_id="clip-size")
            steps = gr.Slider(1, limits.steps, value=first_steps, step=1, label="Steps for the first frame: more is finer and slower",
                              info="--trainer.max_steps", elem_id="clip-steps")
            later = gr.Slider(1, limits.steps, value=max(1, first_steps // 5), step=1, label="Steps for each later frame",
                              info="each starts from the frame before, so fewer do · --video.frame_steps", elem_id="clip-later")
            frames = gr.Number(0, label="How many frames, from the start (0: all the page allows)", precision=0, minimum=0, info="--frames 0:N")
            strength = gr.Slider(0, max(100.0, d.style_weight), value=d.style_weight, step=0.5, label="How strongly the painting's style shows",
                                 info="--model.style_weight")
            estimate = gr.Markdown()
            with gr.Row():
                stylise = gr.Button("Stylise the clip", variant="primary", elem_id="stylise-clip", min_width=120)
                stop = gr.Button("Stop", variant="stop", elem_id="stop-clip", min_width=80)
            go_on = gr.Button("Continue the stopped clip", elem_id="continue-clip", visible=False)
            status = gr.HTML(elem_id="clip-status")
            name = gr.Textbox(label="Clip run", interactive=False, visible=False, elem_id="clip-name")
    gr.Markdown("### 4 · The clip")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            frame = gr.Image(label="The last frame finished", type="filepath", interactive=False, height=300, elem_id="clip-frame")
        with gr.Column(scale=5, min_width=300):
            video = gr.Video(label="Your clip, painted: play or download it", interactive=False, height=300, elem_id="clip-video",
                             buttons=["download"])
    shown = gr.Gallery(label="Frames as they are finished", columns=8, height=150, allow_preview=True, object_fit="contain", fit_columns=False,
                       elem_id="clip-frames")
    with gr.Row(visible=False):
        builtin_painting = gr.Dropdown(list(TITLES), value=first, label="Built-in painting")
        script_buttons = [gr.Button(n) for n in ("stylize_video", "continue_video")]

    outputs = {"video": video, "frame": frame, "status": status, "frames": shown, "clip": name, "continue": go_on}
    page_out, script_out = [outputs[n] for n in [*SCRIPT, "continue"]], [outputs[n] for n in SCRIPT]

    def film(make: Any, later_steps: Any, first_steps_: Any, request: gr.Request) -> Iterator[dict]:
        stopped = started(request)
        if stopped is not None:
            yield stopped
            return
        try:
            run: ClipRun = make()
        except UserError as err:
            raise Refused(without_paths(c.runs, None, f"nst_lightning: error: {err.for_cli()}")) from None
        yield {"video": None, "frame": None, "frames": [], "clip": run.directory.name, "continue": gr.update(visible=False),
               "status": "<p>Starting: reading the clip's frames…</p>"}
        for update in clips.execute(run, c.served, request.session_hash or ""):
            if isinstance(update, ClipOutcome):
                break
            yield _shown(update, _count(first_steps_), _count(later_steps))
        outcome: ClipOutcome = update
        clip_file = str(outcome.video) if outcome.video else None
        yield {**_shown(outcome.progress, 1, 1), "status": _ending(outcome), "video": clip_file, "clip": run.directory.name,
               "continue": gr.update(visible=outcome.video is None and outcome.progress.count is not None)}
        if outcome.error is not None:
            raise Refused(without_paths(c.runs, run.directory, outcome.error))

    def make_fresh(clip_: Any, style: Optional[str], size_: Any, steps_: Any, later_: Any, frames_: Any, strength_: Any) -> Any:
        def make() -> ClipRun:
            count = limits.frames(size_, steps_, later_, frames_)
            path = clip_["path"] if isinstance(clip_, dict) and clip_.get("path") else None  # a bare string is a name, never a server path
            if path is None:
                raise UserError("give a clip (upload one)")
            if style is None:
                raise UserError("give a painting (upload one, or pick one of ours)")
            options = ["--data.image_size", controls.number(size_), "--trainer.max_steps", controls.number(steps_),
                       "--video.frame_steps", controls.number(later_), "--model.style_weight", str(strength_), "--frames", f"0:{count}"]
            return clips.fresh(c.runs, str(path), style, options)

        return make

    def page_clip(clip_: Any, painting_: Any, size_: Any, steps_: Any, later_: Any, frames_: Any, strength_: Any,
                  request: gr.Request) -> Iterator[tuple]:
        make = make_fresh(clip_, chosen_picture(c, painting_), size_, steps_, later_, frames_, strength_)
        yield from for_page(film(make, later_, steps_, request), [*SCRIPT, "continue"])

    # The API's parameters, in this order.
    def stylize_video(clip: Any, painting: Any, size: Any, first_frame_steps: Any, frame_steps: Any, frames: Any, style_strength: Any,
                      builtin_painting: str, request: gr.Request) -> Iterator[tuple]:
        style = chosen_picture(c, painting) or (f"builtin:{builtin_painting}" if builtin_painting in TITLES else None)
        make = make_fresh(clip, style, size, first_frame_steps, frame_steps, frames, style_strength)
        yield from for_script(film(make, frame_steps, first_frame_steps, request), SCRIPT)

    def page_continue(clip_run: str, request: gr.Request) -> Iterator[tuple]:
        yield from for_page(film(lambda: clips.resume(c.runs, clip_run), 1, 1, request), [*SCRIPT, "continue"])

    def continue_video(clip_run: str, request: gr.Request) -> Iterator[tuple]:
        yield from for_script(film(lambda: clips.resume(c.runs, clip_run), 1, 1, request), SCRIPT)

    page_in = [clip, painting, size, steps, later, frames, strength]
    both(stylise, script_buttons[0], "stylize_video", (page_clip, page_in, page_out),
         (stylize_video, [*page_in, builtin_painting], script_out), status)
    both(go_on, script_buttons[1], "continue_video", (page_continue, [name], page_out), (continue_video, [name], script_out), status)
    stop.click(stopping, None, status, api_visibility="private", concurrency_limit=None)

    def put_painting(evt: gr.SelectData) -> Any:
        return picked(c, BUILTIN_PAINTINGS, evt)

    quick = {"queue": False, "api_visibility": "private"}
    painting_choices.select(put_painting, None, painting, **quick)

    def timing(size_: Any, steps_: Any, later_: Any) -> str:
        try:
            side_, first_, later__ = int(float(size_)), int(float(steps_)), int(float(later_))
        except (TypeError, ValueError):
            return ""
        most = max(1, 1 + (limits.steps - first_) // max(later__, 1))
        times = (f"The first frame: **{c.speed.estimate(side_, first_)}**, then **{c.speed.estimate(side_, later__).removeprefix('about ')}** "
                 "a frame, on this machine") if c.speed.measured else f"The time a frame takes: {c.speed.estimate(side_, first_)}"
        return f"{times}. At most {most} frames, by this page's limit of {limits.steps} steps a run."

    for field in (size, steps, later):
        field.change(timing, [size, steps, later], estimate, **quick, trigger_mode="always_last")
    return [(timing, [size, steps, later], estimate, True)]


def _shown(progress: ClipProgress, first_steps: int, later_steps: int) -> dict:
    eta = progress.eta(first_steps, later_steps)
    if progress.count is None:
        status = "<p>Reading the clip's frames…</p>"
    else:
        left = "ETA: after the first frame" if eta is None else f"ETA {duration(eta)}"
        status = (f'<progress value="{progress.done}" max="{progress.count}"></progress>'
                  f"<p>frame {progress.done} of {progress.count}, {left}</p>")
    return {"status": status, "frame": str(progress.frames[-1]) if progress.frames else None,
            "frames": [(str(f), f"frame {i}") for i, f in enumerate(progress.frames, 1)]}


def _ending(outcome: ClipOutcome) -> str:
    p = outcome.progress
    if outcome.error is not None:
        return ""
    if outcome.video is not None:
        return f"<p>Done: {p.done} frames. Play it below, or download it.</p>"
    if outcome.stopped:
        return f"<p>Stopped after {p.done} of {p.count or '?'} frames: Continue goes on from there.</p>"
    return f"<p>The clip's command ended (exit code {outcome.code}) after {p.done} frames: Continue tries again.</p>"


def _count(value: Any) -> int:
    try:
        return max(1, int(float(value)))
    except (TypeError, ValueError):
        return 1

