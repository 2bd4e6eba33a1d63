"""The ui command's server, driven as a user's script would drive it: ``gradio_client`` on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.ui.conftest import client, run_directories, run_folder, start_server
from tests.video.clips import make_pan_clip

pytest.importorskip("gradio_client", reason='the ui extra is not installed: pip install -e ".[ui]"')
import av  # noqa: E402  (the video extra: the clips' tests)
import httpx  # noqa: E402  (gradio_client's own dependency)
from gradio_client import handle_file  # noqa: E402

from nst_lightning.ui.runner import LAST, checkpoint_step  # noqa: E402

# Every test here talks to a real server process of the page (gradio's import and a run's: tens of seconds).
# One worker runs every test on the session's page server (pyproject: --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_server")]


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
    copied = [run_folder(job.result(timeout=180)) / "inputs" for job in jobs]  # copying its inputs is a run's first act
    first, second = sorted(copied, key=lambda inputs: inputs.stat().st_mtime_ns)
    # The later run copied its inputs only after the earlier one had written its result.
    assert (first.parent / "generated.png").stat().st_mtime_ns <= second.stat().st_mtime_ns


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


@pytest.mark.parametrize(
    "choice, loss, weight",
    [({"style_loss": "nearest_neighbour"}, "nearest_neighbour", 9.0), ({"preset": "Best quality"}, "sliced_wasserstein", 45.0)],
)
def test_each_style_loss_and_the_best_quality_preset_run_from_the_page(server, tmp_path, choice, loss, weight):
    # The page's strength is on Gram's scale: 10 gives each loss its own config's weight, and the loss's
    # config options go with it (nearest neighbour's layers and start).
    result = client(server, tmp_path).predict(None, [handle_file(server.images / "painting.png")], 48, 2, 10.0, **choice, api_name="/stylize")
    config = yaml.safe_load((run_folder(result) / "config.yaml").read_text())
    assert "Done: 2 steps" in result[2]
    assert (config["model"]["style_loss"], config["model"]["style_weight"]) == (loss, weight)
    if loss == "nearest_neighbour":
        assert config["model"]["style_layers"] == ["conv3_1", "conv4_1", "conv5_1"] and config["model"]["init_color_strength"] == 1.0


def test_stop_keeps_a_queued_run_from_starting(server, tmp_path):
    runner, waiter = client(server, tmp_path / "a"), client(server, tmp_path / "b")
    painting = handle_file(server.images / "painting.png")
    before = run_directories(server.runs)
    long = runner.submit(None, [painting], 48, 2000, 10.0, api_name="/stylize")
    deadline = time.monotonic() + 120
    while not any(output[1] is not None for output in long.outputs()):  # it holds the run slot
        assert time.monotonic() < deadline and not long.done(), long.outputs()
        time.sleep(0.1)
    queued = waiter.submit(None, [painting], 48, 2, 10.0, api_name="/stylize")
    while queued.status().code.name != "IN_QUEUE":
        assert time.monotonic() < deadline and not queued.done(), queued.status()
        time.sleep(0.05)
    assert "Stopped before it started" in waiter.predict(api_name="/stop")
    runner.predict(api_name="/stop")
    assert long.result(timeout=120)[2].startswith("<p>Stopped after ")
    assert "Stopped before it started" in queued.result(timeout=60)[2]
    assert len(run_directories(server.runs)) == len(before) + 1  # the long run's; the queued one never began
    # A Stop with nothing running or waiting keeps no later run from starting.
    waiter.predict(api_name="/stop")
    assert "Done: 2 steps" in waiter.predict(None, [painting], 48, 2, 10.0, api_name="/stylize")[2]


def test_a_run_cut_short_by_a_killed_server_is_listed_and_continues(server, tmp_path):
    painting = handle_file(server.images / "painting.png")
    before = set(run_directories(server.runs))
    crashed = start_server(tmp_path, server.runs, server.images)  # a second server on the same runs
    try:
        client(crashed, tmp_path / "a").submit(None, [painting], 48, 2000, 10.0, api_name="/stylize")
        deadline, folder = time.monotonic() + 120, None
        while folder is None:
            assert time.monotonic() < deadline, "no checkpoint at step 6 within 120 s"
            new = [server.runs / name for name in set(run_directories(server.runs)) - before]
            # last.ckpt, which the gallery and a continue read: the checkpoint of step 6 is written just
            # before it, so a kill between the two left last.ckpt at step 4 (the test failed so).
            folder = next((f for f in new if (checkpoint_step(f / LAST) or 0) >= 6), None)
            time.sleep(0.1)
    finally:
        crashed.process.kill()  # SIGKILL mid-run: the run never wrote its end
        crashed.process.wait()
    session = client(server, tmp_path / "b")
    gallery = session.predict(None, [painting], 48, 2, 10.0, api_name="/stylize")[5]
    listed = [item["caption"] for item in gallery if item["caption"].startswith(f"{folder.name}: ")]
    assert len(listed) == 1 and Path(next(i for i in gallery if i["caption"] == listed[0])["image"]).is_file(), gallery
    steps = int(listed[0].split(": ")[1].split()[0])  # its checkpoint's step
    assert steps >= 6
    more = session.predict(folder.name, 4, api_name="/continue")
    assert run_folder(more) == folder and f"Done: {steps + 4} steps" in more[2]
    assert json.loads((folder / "ui.json").read_text())["steps"] == steps + 4


def test_a_stopped_clip_continues_where_it_stopped(server, tmp_path):
    session = client(server, tmp_path)
    clip = handle_file(make_pan_clip(tmp_path / "pan.mp4", count=3))
    before = set(run_directories(server.runs))
    job = session.submit(clip, handle_file(server.images / "painting.png"), 48, 60, 1, 0, 10.0, api_name="/stylize_video")
    deadline, checkpoint = time.monotonic() + 120, None
    while checkpoint is None:  # the first frame (60 steps) is painting, its checkpoint written every 2 steps
        assert time.monotonic() < deadline and not job.done(), job.outputs()
        new = [server.runs / name for name in set(run_directories(server.runs)) - before]
        checkpoint = next((c for d in new for c in [d / "out" / "runs" / "frame_000001" / "checkpoints" / "last.ckpt"] if c.is_file()), None)
        time.sleep(0.1)
    session.predict(api_name="/stop")
    stopped = job.result(timeout=120)
    assert stopped[0] is None and stopped[2].startswith("<p>Stopped after 0 of 3 frames"), stopped
    out = server.runs / stopped[4] / "out"
    assert checkpoint.is_file() and not (out / "frames").exists()  # the frame kept its checkpoint, unfinished
    done = session.predict(stopped[4], api_name="/continue_video")  # the video command's own resume
    assert "Done: 3 frames" in done[2] and len(done[3]) == 3
    assert json.loads((out / "runs" / "frame_000001" / "frame.json").read_text())["steps"] == 60
    with av.open(done[0]) as container:  # the downloaded clip: 3 frames, and the clip's sound
        assert len(list(container.decode(video=0))) == 3 and container.streams.audio
    for path in [out / "clip.json", out / "clip.mp4", out / "runs/frame_000001/frame.log", out.parent / "inputs/clip.mp4", out.parent / "ui.log"]:
        assert path.is_file() and httpx.get(f"{server.url}gradio_api/file={path}").status_code == 403, path  # served: its pictures only
