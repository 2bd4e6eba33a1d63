"""What a visitor of the page cannot do to its server, driven as a script would (``gradio_client`` and plain
HTTP on 127.0.0.1): keep an upload that is not an image, read any file of a run but its picture, ask for more
than the operator's limits, fill the disk past ``--max-storage-gb``, or get a traceback for a refused call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.inputs.files import png_bytes
from tests.ui.conftest import client, make_images, run_directories, run_folder, start_server, stop_server
from tests.video.clips import make_pan_clip

pytest.importorskip("gradio_client", reason='the ui extra is not installed: pip install -e ".[ui]"')
import httpx  # noqa: E402  (gradio_client's own dependency)
from gradio_client import handle_file  # noqa: E402

# Every test here talks to a real server process of the page (gradio's import and a run's: tens of seconds).
# One worker runs every test on the session's page server (pyproject: --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_server")]


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server with small operator limits: 64 px, 10 steps, 1 MB of runs."""
    root = tmp_path_factory.mktemp("ui-limited")
    started = start_server(root, root / "runs", make_images(root / "images"), "--max-size", "64", "--max-steps", "10", "--max-storage-gb", "0.001")
    yield started
    stop_server(started)


def refusal(call) -> str:
    with pytest.raises(Exception) as refused:
        call()
    return str(refused.value)


def test_an_upload_that_is_not_an_image_leaves_nothing_on_the_server(server, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(30000, 30000))  # 900 Mpx declared in 60 bytes
    painting = handle_file(server.images / "painting.png")
    before = run_directories(server.runs)
    for photo, words in [(server.images / "notes.txt", "not a readable image"), (bomb, "decompression bomb")]:
        message = refusal(lambda: client(server, tmp_path).predict(handle_file(photo), [painting], 48, 2, 10.0, api_name="/stylize"))
        assert message.startswith("nst_lightning: error: --data.content: ") and words in message and "\n" not in message
    assert run_directories(server.runs) == before  # no run directory, no copy of the upload
    assert not [p for p in (server.runs / ".gradio").rglob("*") if p.name in ("notes.txt", "bomb.png")]  # nor in Gradio's uploads


def test_only_a_runs_picture_is_served(server, tmp_path):
    result = client(server, tmp_path).predict(None, [handle_file(server.images / "painting.png")], 48, 2, 10.0, api_name="/stylize")
    folder = run_folder(result)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{16}", folder.name)  # not guessable from the time
    for name in ["checkpoints/last.ckpt", "config.yaml", "ui.log", "ui.json", "inputs/painting1.png", "generated.png"]:
        assert (folder / name).is_file()
        assert httpx.get(f"{server.url}gradio_api/file={folder / name}").status_code == 403, name
    assert Path(result[0]).read_bytes() == (folder / "generated.png").read_bytes()  # the result still downloads
    assert Image.open(result[0]).size == (48, 36)
    pictures = [Path(item["image"]) for item in result[5] if item["caption"].startswith(folder.name)]
    assert len(pictures) == 1 and Image.open(pictures[0]).size == (48, 36)  # and the gallery's picture


def test_refused_calls_are_one_line_in_the_log_and_to_the_client(server, tmp_path):
    session, painting = client(server, tmp_path), handle_file(server.images / "painting.png")
    offset = len(server.log.read_text())
    calls = [
        (lambda: session.predict(None, [painting], "abc", 2, 10.0, api_name="/stylize"), "--data.image_size 'abc': give a whole number"),
        (lambda: session.predict(None, [painting], 48, 2, 10.0, preset=["x"], api_name="/stylize"), "quality preset ['x']: choose one of"),
        (lambda: session.predict(None, [painting], 48, 2, 10.0, builtin_photo="../../etc/passwd", api_name="/stylize"), "built-in photo"),
        (lambda: session.predict("nope", "x", api_name="/continue"), "more steps 'x': give a whole number"),
        (lambda: session.predict("/etc", 3, api_name="/continue"), "no run named '/etc'"),
    ]
    messages = []
    for call, words in calls:
        message = refusal(call)
        assert message.startswith("nst_lightning: error: ") and words in message and "\n" not in message, message
        messages.append(message)
    log = server.log.read_text()[offset:]
    assert "Traceback" not in log and log.splitlines() == messages


def test_operator_limits_are_one_line_before_any_run(limited, tmp_path):
    session, painting = client(limited, tmp_path), handle_file(limited.images / "painting.png")
    offset = len(limited.log.read_text())
    calls = [
        (lambda: session.predict(None, [painting], 65, 2, 10.0, api_name="/stylize"), "--data.image_size 65: over this page's limit of 64 px"),
        (lambda: session.predict(None, [painting], 1e9, 2, 10.0, api_name="/stylize"), "--data.image_size 1000000000: over"),
        (lambda: session.predict(None, [painting], 48, 11, 10.0, api_name="/stylize"), "--trainer.max_steps 11: over this page's limit of 10 steps"),
        (lambda: session.predict(None, [painting], 48, 2, 10.0, style_scale=2, api_name="/stylize"), "--data.style_scale 2: paintings of 96 px"),
        (lambda: session.predict("20260101-000000-0123456789abcdef", 11, api_name="/continue"), "more steps 11: over this page's limit"),
    ]
    messages = [refusal(call) for call, _ in calls]
    for message, (_, words) in zip(messages, calls):
        assert message.startswith("nst_lightning: error: ") and words in message and "--max-" in message and "\n" not in message, message
    assert run_directories(limited.runs) == []
    log = limited.log.read_text()[offset:]
    assert "Traceback" not in log and log.splitlines() == messages


def test_no_new_run_past_the_storage_cap(limited, tmp_path):
    session, painting = client(limited, tmp_path), handle_file(limited.images / "painting.png")
    filler = limited.runs / ".filler"
    filler.write_bytes(bytes(2_000_000))  # 2 MB, over the 1 MB cap
    try:
        message = refusal(lambda: session.predict(None, [painting], 48, 2, 10.0, api_name="/stylize"))
        assert message.startswith("nst_lightning: error: the page's runs take 0.002") and "--max-storage-gb" in message and "\n" not in message
        assert run_directories(limited.runs) == []
    finally:
        filler.unlink()
    assert "Done: 2 steps" in session.predict(None, [painting], 48, 2, 10.0, api_name="/stylize")[2]


def test_a_clips_refusals_are_one_line_in_the_log_and_to_the_client(limited, tmp_path):
    session, painting = client(limited, tmp_path), handle_file(limited.images / "painting.png")
    clip = handle_file(make_pan_clip(tmp_path / "pan.mp4", count=4, audio=False))
    offset, before = len(limited.log.read_text()), run_directories(limited.runs)
    calls = [
        (lambda: session.predict(clip, painting, "abc", 4, 2, 0, 10.0, api_name="/stylize_video"), "--data.image_size 'abc': give a whole number"),
        (lambda: session.predict(clip, painting, 65, 4, 2, 0, 10.0, api_name="/stylize_video"),
         "--data.image_size 65: over this page's limit of 64 px"),
        # 4 steps for the first frame and 2 for each later one: 5 frames are 12 steps, over the server's 10.
        (lambda: session.predict(clip, painting, 48, 4, 2, 5, 10.0, api_name="/stylize_video"),
         "--frames 0:5: 5 frames of 4 + 4 x 2 steps are 12 steps"),
        (lambda: session.predict(None, painting, 48, 4, 2, 0, 10.0, api_name="/stylize_video"), "give a clip (upload one)"),
        (lambda: session.predict("/etc", api_name="/continue_video"), "no clip named '/etc'"),
    ]
    messages = [refusal(call) for call, _ in calls]
    for message, (_, words) in zip(messages, calls):
        assert message.startswith("nst_lightning: error: ") and words in message and "\n" not in message, message
        assert str(limited.runs) not in message  # no server path in what a visitor reads
    assert run_directories(limited.runs) == before  # nothing was started
    log = limited.log.read_text()[offset:]
    assert "Traceback" not in log and log.splitlines() == messages
