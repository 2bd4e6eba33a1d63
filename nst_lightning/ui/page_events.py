"""What every event of the page that starts a run shares (the photo tab's and the video tab's): the one run
slot, the note each request leaves as it joins the queue, and how a refusal is said.

Each such event is there twice: once for the page (its button) and once for scripts (a hidden button that
carries the API name: ``/stylize``, ``/continue``...). The two differ in how a refusal ends: the page's
shows its one line in one place, the status under the buttons, and marks nothing else (an event that raises
``gr.Error`` marks each of its outputs "Error" in the browser); the script's raises ``gr.Error`` with that
same line, which ``gradio_client`` gives as the error's text. Both print it once to the server's log.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import gradio as gr

from nst_lightning.ui import live, words

RUN = {"concurrency_limit": 1, "concurrency_id": "run", "preprocess": False}
STOPPED_WAITING = "<p>Stopped before it started: nothing was run.</p>"


def noting(handler: Callable) -> Callable:
    """Gradio's validator for ``handler``'s event: called with the same inputs and request (its signature is
    ``handler``'s) as the request joins the queue. It notes the request, so that Stop can keep it from
    starting, and refuses nothing (a refusal is the handler's one line)."""

    @functools.wraps(handler)
    def noted(*values: Any) -> list[None]:
        request = values[-1]  # the handler's last parameter, its gr.Request
        live.queued(request.session_hash or "")
        return [None] * (len(values) - 1)

    return noted


def with_request(handler: Callable[..., Iterator], count: int) -> Callable[..., Iterator]:
    """``handler(*values, request)`` with a signature Gradio reads (it gives the request only to a positional
    parameter annotated ``gr.Request``): ``count`` inputs, then the request."""

    def call(*values: Any) -> Iterator:
        yield from handler(*values)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(f"input_{i}", kind) for i in range(count)]
    call.__signature__ = inspect.Signature([*parameters, inspect.Parameter("request", kind, annotation=gr.Request)])  # type: ignore[attr-defined]
    call.__annotations__ = {"request": gr.Request}
    return call


class Refused(Exception):
    """A run's or a request's one line (``nst_lightning: error: ...``), its server paths already taken out."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def said(line: str) -> str:
    """The line, once, in the server's log (the terminal's stream: while a run goes, ``sys.stderr`` is that
    run's log)."""
    print(line, file=sys.__stderr__, flush=True)
    return line


def for_page(updates: Iterator[dict], names: Sequence[str], status: str = "status") -> Iterator[tuple]:
    """``updates`` (each a dict of output name -> value) as the page's outputs ``names``; a refusal as its
    line in the status, the other outputs left as they are."""
    try:
        for update in updates:
            yield _as_outputs(update, names)
    except Refused as refused:
        yield _as_outputs({status: words.as_html(said(refused.line))}, names)


def for_script(updates: Iterator[dict], names: Sequence[str]) -> Iterator[tuple]:
    """``updates`` as a script's outputs ``names``; a refusal as ``gr.Error(line)``, its text for the client."""
    try:
        for update in updates:
            yield tuple(_value(v) for v in _as_outputs(update, names))
    except Refused as refused:
        raise gr.Error(said(refused.line), print_exception=False) from None


def both(page_button: gr.Button, script_button: gr.Button, api_name: str, page: tuple[Callable, list, list], script: tuple[Callable, list, list],
         status: gr.components.Component) -> None:
    """The event for the page (``page``: handler, inputs, outputs; private) and for scripts (``script``,
    named ``api_name``), in the one run slot, each request noted as it joins the queue. On the page Gradio's
    own progress (the place in the queue) shows on ``status`` only, not over the pictures."""
    handler, inputs, outputs = page
    page_button.click(handler, inputs, outputs, api_visibility="private", validator=noting(handler), show_progress_on=[status], **RUN)
    handler, inputs, outputs = script
    script_button.click(handler, inputs, outputs, api_name=api_name, validator=noting(handler), **RUN)


def stopping(request: gr.Request) -> Any:
    running, waiting = live.stop(request.session_hash or "")
    if running:
        return "<p>Stopping at the end of this step; the image so far is saved…</p>"
    return STOPPED_WAITING if waiting else gr.skip()


def started(request: gr.Request) -> Optional[dict]:
    """None when the request may start its run; else what it shows (its page pressed Stop while it waited)."""
    if live.starting(request.session_hash or ""):
        return None
    return {"status": STOPPED_WAITING}


def _as_outputs(update: dict, names: Sequence[str]) -> tuple:
    return tuple(update.get(name, gr.skip()) for name in names)


def _value(value: Any) -> Any:
    """What a script gets of an output: its value, not what the page shows or hides (``gr.update``)."""
    if isinstance(value, dict) and value.get("__type__") == "update" and "visible" in value:
        return value.get("value", gr.skip()) if "value" in value else gr.skip()
    return value
