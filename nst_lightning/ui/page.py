"""The page: ``build(runs, defaults, limits, speed, builtins)`` makes the Gradio ``Blocks``: a tab for a
photo (``page_photo``) and one for a clip (``page_video``), each with its pictures, its settings in plain
words, Stylise and Stop, what it makes as it goes, and the result to keep.

Every event that starts a run shares one concurrency slot (``concurrency_id="run"``, limit 1): one run
at a time (a photo's or a clip's), the others queued, their place in the queue shown by Gradio on each
waiting page. Stop is outside that queue, so it is heard while a run holds the slot; each run's request is
noted as it joins the queue (a validator, which Gradio calls then), so that Stop also keeps a waiting one
from starting (``page_events``).

The events that start runs take their inputs as the client sent them (``preprocess=False``): a value that
Gradio could not convert would be its traceback in the server's log and no message for the client; here
every refusal is one line, in the log, and on the page in one place (its status) or, for a script, as the
error's text (``page_events``).

What is served: the pictures in ``runs.SERVED`` (a static path: served as they are, not copied): the runs'
results, their photos at the result's size, a clip's frames and video, the built-in images; and what Gradio
keeps itself (uploads and previews, a run's settings file, in its upload folder, removed after ``KEPT_S``).
No other file of a run is reachable.

``CSS`` and ``JS`` go to ``launch``: a layout that holds at a phone's 390 px, and the browser's refusal of a
file that is not a picture (or a clip) said in plain words (Gradio's own sentence names MIME types).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from nst_lightning.ui.controls import Defaults, Limits
from nst_lightning.ui.page_photo import Context, photo_tab
from nst_lightning.ui.page_video import video_tab
from nst_lightning.ui.runs import Runs
from nst_lightning.ui.speed import Speed

# Uploads and previews in Gradio's upload folder are removed this long after they were made (checked every
# KEPT_S / 6): a page left open longer asks for its uploads again. Its runs keep copies of their inputs.
KEPT_S = 3600
TICK_S = 2.0
INTRO = """# Turn a photo into a painting
Choose your photo and a painting, then press **Stylise**: the picture paints itself in front of you, and
at the end you can compare it with your photo and download it. Every picture you make is kept below, to see
again, to continue, or to start from."""

CSS = """
.nst-message { border: 1px solid var(--error-border-color); background: var(--error-background-fill); color: var(--error-text-color);
               border-radius: var(--radius-lg); padding: 10px 14px; font-weight: 600; }
.nst-paintings { flex-wrap: wrap; }
.nst-small p { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
.nst-choices .thumbnail-item { cursor: pointer; }
#status progress, #clip-status progress { width: 100%; height: 14px; }
@media (max-width: 480px) {
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  .nst-paintings > div { min-width: calc(50% - 8px) !important; }
}
"""

# Gradio refuses a file of the wrong kind in the browser, before it is uploaded, in a toast that reads
# "Invalid file type: notes.txt. Only image/* allowed."; the same refusal, in words a photographer reads.
JS = """
() => {
  const plain = (text) => {
    const found = text.match(/^Invalid file types?: (.+)\\. Only (.+) allowed\\.$/);
    if (!found) return null;
    const what = found[2].includes("video") ? "a video clip: choose an MP4, MOV or WebM file"
                                            : "a picture: choose a photo or painting saved as JPEG, PNG, WebP or TIFF";
    return `${found[1]} is not ${what}.`;
  };
  const reword = () => {
    for (const node of document.querySelectorAll(".toast-text, [data-testid='toast-text']")) {
      const sentence = plain(node.textContent.trim());
      if (sentence) node.textContent = sentence;
    }
  };
  new MutationObserver(reword).observe(document.body, {childList: true, subtree: true, characterData: true});
}
"""


def build(runs: Runs, defaults: Defaults, limits: Limits, speed: Speed, builtins: dict[str, Path]) -> gr.Blocks:
    context = Context(runs, defaults, limits, speed, builtins)
    with gr.Blocks(title="Style transfer: a photo as a painting", analytics_enabled=False, delete_cache=(KEPT_S // 6, KEPT_S)) as page:
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Tabs():
            with gr.Tab("Photo", id="photo-tab"):
                loads = photo_tab(context)
            with gr.Tab("Video", id="video-tab"):
                loads += video_tab(context)
        # The estimates wait for this machine's speed (measured as the server starts): shown again every
        # TICK_S until it is known, then the timer stops, in one event, so that the last figures shown are
        # those computed after it was known.
        ticker = gr.Timer(TICK_S)
        for handler, inputs, outputs, _ in loads:
            page.load(handler, inputs, outputs, api_visibility="private")
        estimates = [(handler, inputs, outputs) for handler, inputs, outputs, estimate in loads if estimate]

        def tick(*values: Any) -> list:
            known = speed.measured or speed.failed  # read first: the figures below are at least as new
            shown, start = [], 0
            for handler, inputs, outputs in estimates:
                result = handler(*values[start : start + len(inputs)])
                start += len(inputs)
                shown += list(result) if isinstance(result, (list, tuple)) else [result]
            return [*shown, gr.Timer(active=not known)]

        every = [(inputs, outputs if isinstance(outputs, list) else [outputs]) for _, inputs, outputs in estimates]
        ticker.tick(tick, [i for inputs, _ in every for i in inputs], [o for _, outputs in every for o in outputs] + [ticker],
                    api_visibility="private", queue=False)
    return page
