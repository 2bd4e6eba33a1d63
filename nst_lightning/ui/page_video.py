"""The video tab (being built)."""

from __future__ import annotations

import gradio as gr


def video_tab(c) -> None:
    gr.Markdown("Video")
