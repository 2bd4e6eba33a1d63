"""The ui command's server, driven as a user's script would drive it: ``gradio_client`` on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("gradio_client", reason='the ui extra is not installed: pip install -e ".[ui]"')
from gradio_client import Client, handle_file  # noqa: E402


def client(server, tmp_path: Path) -> Client:
    return Client(server.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))


def run_folder(outputs: tuple) -> Path:
    """The run directory the page names in its last message ("Run folder: `...`")."""
    return Path(outputs[4].split("`")[1])


def test_a_run_streams_previews_and_returns_the_result(server, tmp_path):
    job = client(server, tmp_path).submit(
        None, [handle_file(server.images / "painting.png")], 48, 6, 10.0, api_name="/stylize"
    )
    result = job.result(timeout=120)
    previews = [output[1] for output in job.outputs() if output[1] is not None]
    assert len(previews) >= 2, job.outputs()
    assert Image.open(result[0]).size == (48, 36)  # the built-in photo's aspect, 48 px long side
    assert "Done: 6 steps" in result[2]
    folder = run_folder(result)
    assert folder.parent == server.runs and (folder / "generated.png").is_file()
    assert (folder / "checkpoints" / "last.ckpt").is_file() and list(folder.glob("events.out.tfevents.*"))
    assert json.loads((folder / "ui.json").read_text())["steps"] == 6


def test_a_16_bit_result_to_download(server, tmp_path):
    result = client(server, tmp_path).predict(
        None, [handle_file(server.images / "painting.png")], 48, 2, 10.0, bit_depth="16", api_name="/stylize"
    )
    downloaded = Path(result[0]).read_bytes()
    assert downloaded[:8] == b"\x89PNG\r\n\x1a\n" and downloaded[24] == 16  # IHDR's bit depth
    assert "Done: 2 steps" in result[2]


def test_a_text_file_as_the_photo_is_the_one_line_error(server, tmp_path):
    with pytest.raises(Exception) as refused:
        client(server, tmp_path).predict(
            handle_file(server.images / "notes.txt"), [handle_file(server.images / "painting.png")], api_name="/stylize"
        )
    message = str(refused.value)
    assert message.startswith("nst_lightning: error: --data.content: ") and "not a readable image" in message
    assert "\n" not in message and "Traceback" not in message


def test_two_submissions_run_one_after_the_other(server, tmp_path):
    first, second = client(server, tmp_path / "a"), client(server, tmp_path / "b")
    painting = handle_file(server.images / "painting2.jpg")
    jobs = [c.submit(handle_file(server.images / "photo.png"), [painting], 48, 4, 5.0, api_name="/stylize") for c in (first, second)]
    # The queue is the server's, not a page's: while one runs, the other session is told its place.
    ranks, deadline = set(), time.monotonic() + 60
    while not any(job.done() for job in jobs) and time.monotonic() < deadline:
        for job in jobs:
            status = job.status()
            if status.code.name == "IN_QUEUE" and status.rank is not None:
                ranks.add((status.rank, status.queue_size))
        time.sleep(0.02)
    assert any(rank == 0 and size >= 1 for rank, size in ranks), ranks
    folders = sorted(run_folder(job.result(timeout=180)) for job in jobs)  # named by time, so in start order
    # The later run copied its inputs (its first act) only after the earlier one had written its result.
    assert (folders[0] / "generated.png").stat().st_mtime_ns <= (folders[1] / "inputs").stat().st_mtime_ns


def test_stop_ends_a_run_with_a_checkpoint(server, tmp_path):
    session = client(server, tmp_path)
    job = session.submit(None, [handle_file(server.images / "painting.png")], 48, 2000, 10.0, api_name="/stylize")
    deadline = time.monotonic() + 120
    while sum(output[1] is not None for output in job.outputs()) < 2:  # it is painting
        assert time.monotonic() < deadline and not job.done(), job.outputs()
        time.sleep(0.1)
    session.predict(api_name="/stop")
    result = job.result(timeout=120)
    assert result[2].startswith("<p>Stopped after ")
    steps = int(result[2].split("Stopped after ")[1].split()[0])
    folder = run_folder(result)
    assert 0 < steps < 2000 and (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "generated.png").is_file()
    assert json.loads((folder / "ui.json").read_text())["steps"] == steps


def test_the_server_listens_on_127_0_0_1_only(server):
    table = Path("/proc/net/tcp")
    if not table.is_file():
        pytest.skip("no /proc/net/tcp on this system to read the listening address from")
    listening = [line.split()[1] for line in table.read_text().splitlines()[1:] if line.split()[3] == "0A"]  # 0A: LISTEN
    addresses = [address for address, port in (entry.split(":") for entry in listening) if int(port, 16) == server.port]
    assert addresses == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_continue_and_start_from_a_result(server, tmp_path):
    session = client(server, tmp_path)
    first = run_folder(session.predict(None, [handle_file(server.images / "painting.png")], 48, 4, 10.0, api_name="/stylize"))
    more = session.predict(first.name, 3, api_name="/continue")  # a resume: same directory, --ckpt_path last
    assert run_folder(more) == first and "Done: 7 steps" in more[2]
    assert json.loads((first / "ui.json").read_text())["steps"] == 7
    again = session.predict(first.name, 48, 2, 5.0, api_name="/start_from_result")  # a new run from its image
    folder = run_folder(again)
    assert folder != first and "Done: 2 steps" in again[2]
    args = json.loads((folder / "ui.json").read_text())["args"]
    assert args[args.index("--model.init_image") + 1] == str(first / "generated.png")
    with pytest.raises(Exception, match="no run named '/etc'"):  # only the server's names, never a path
        session.predict("/etc", 3, api_name="/continue")
