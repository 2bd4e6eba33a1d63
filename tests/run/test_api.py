"""stylize(): the Python API, on tiny images with untrained weights."""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning import stylize
from nst_lightning.inputs.images import load_image
from nst_lightning.model import preflight
from nst_lightning.run.quiet import NoAdvertisements
from nst_lightning.utilities.errors import UserError
from tests.helpers import checkpoint, make_image


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255


TINY = dict(image_size=48, max_steps=3, weights="random", progress_bar=False)


def test_paths_give_a_pil_image_and_leave_no_files(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    # Lightning's rank-zero lines, as a fresh process prints them: no filter yet (an earlier test's run
    # installs it for the whole process), and seen here (that logger's records reach no root handler).
    lightning_lines = logging.getLogger(NoAdvertisements.LOGGER)
    monkeypatch.setattr(lightning_lines, "filters", [])
    monkeypatch.setattr(lightning_lines, "handlers", [caplog.handler])
    image = stylize("builtin:tubingen", "builtin:the_scream", **TINY)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (48, 36)
    assert list(tmp_path.iterdir()) == []  # no logs, no checkpoints unless asked
    assert "stopped: `max_steps=3` reached" in caplog.text  # Lightning's own lines are kept
    assert "Tip:" not in caplog.text  # printed by the Trainer's constructor, unless filtered before it


def test_pil_images_and_tensors_are_inputs_too(tmp_path):
    photo = Image.open(make_image(tmp_path / "photo.png", size=(40, 30)))
    painting = torch.rand(3, 50, 50)
    image = stylize(photo, [painting, "builtin:starry_night"], style_weights=[1, 2], **TINY)
    assert image.size == (48, 36)


def test_same_result_as_the_module_route_and_the_callers_random_state_is_kept(run_cli, run_dir):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    image = stylize("builtin:tubingen", "builtin:starry_night", init="noise", image_size=48, max_steps=4,
                    weights="random", progress_bar=False)  # fmt: skip
    assert torch.equal(torch.rand(1), expected_next)
    run_cli("--model.init", "noise")  # configs/debug.yaml: the same 48 px, 4 steps, seed 0
    assert torch.allclose(load_image(str(run_dir / "generated.png")), to_tensor(image), atol=1 / 255)


def test_log_dir_keeps_the_run(tmp_path):
    stylize("builtin:tubingen", "builtin:starry_night", log_dir=tmp_path / "run", style_loss="wasserstein", **TINY)
    assert (tmp_path / "run" / "generated.png").exists()
    assert checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_errors_name_the_arguments():
    with pytest.raises(UserError, match=r"^content: file not found: missing\.jpg"):
        stylize("missing.jpg", "builtin:starry_night", **TINY)
    with pytest.raises(UserError, match=r"^stage_steps add up to 5 steps, leaving none of max_steps 3"):
        stylize("builtin:tubingen", "builtin:starry_night", stage_steps=[5], **TINY)
    with pytest.raises(TypeError, match="style_wieght"):
        stylize("builtin:tubingen", "builtin:starry_night", style_wieght=3, **TINY)


# Each case: the arguments (over a valid call into log_dir "run"), and the whole message: the argument
# as Python names it, the value, and what to give instead.
BAD_ARGUMENTS = {
    "style_weight<0": (dict(style_weight=-5), r"style_weight is -5; give a finite float >= 0"),
    "ema_decay>1": (dict(ema_decay=1.5), r"ema_decay is 1\.5; give a float > 0 and < 1, or None"),
    "lr<0": (dict(lr=-1), r"lr is -1; give a finite float > 0, or None"),
    "optimizer": (dict(optimizer="sgd"), r"optimizer is 'sgd'; give one of 'adam', 'lbfgs'"),
    "init": (dict(init="bogus"), r"init is 'bogus'; give one of 'content', 'painting_colors', 'noise', 'image'"),
    "style_weight-str": (dict(style_weight="lots"), r"style_weight is 'lots'; give a finite float >= 0"),
    "max_steps-str": (dict(max_steps="3"), r"max_steps is the string '3'; give max_steps=3 \(an int > 0\)"),
    "image_size=0": (dict(image_size=0), r"image_size is 0; give an int > 0"),
    "stage_steps": (dict(stage_steps=[0]), r"stage_steps is \[0\]; give a list whose items are each an int > 0, or None"),
    "style_layers": (
        dict(style_layers=["conv9"]),
        r"style_layers is \['conv9'\]; give a list whose items are each one of 'conv1_1', .*",
    ),
    "regions-str": (
        dict(regions=[{"mask": "sky.png", "style": "builtin:the_scream", "weight": "2"}]),
        r"regions holds the string '2'; give 2\.0, not the string \(a list whose items are each a Region \(or a dict of its fields\), or None\)",
    ),
    "misspelt": (
        dict(style_wieght=3),
        r"stylize\(\) got unexpected keyword argument\(s\) style_wieght \(did you mean style_weight\?\); options are .*",
    ),
    # stylize's own arguments, and the Trainer's two
    "max_steps=0": (dict(max_steps=0), r"max_steps is 0; give an int > 0"),
    "seed<0": (dict(seed=-1), r"seed is -1; give an int from 0 to 4294967295, or None"),
    "seed>2**32": (dict(seed=2**32), r"seed is 4294967296; give an int from 0 to 4294967295, or None"),
    "accelerator": (
        dict(accelerator="bogus"),
        r"accelerator 'bogus' cannot run here: .*invalid accelerator name.* \(give accelerator='auto' to use what this machine has\)",
    ),
    "precision": (dict(precision="bogus"), r"precision is 'bogus'; give one of 64, 32, 16, .*'bf16-mixed', .*, or None"),
    "lbfgs-16-mixed": (
        dict(precision="16-mixed", optimizer="lbfgs"),
        r"optimizer lbfgs cannot run with precision 16-mixed \(its GradScaler does not support L-BFGS\); use bf16-mixed, 32, or optimizer adam",
    ),
    "log_dir-int": (dict(log_dir=3), r"log_dir is 3 \(an int\); give a string or a path, or None"),
    "progress_bar-str": (dict(progress_bar="yes"), r"progress_bar is the string 'yes'; give progress_bar=True \(True or False\)"),
    "progress_bar-None": (dict(progress_bar=None), r"progress_bar is None; give True or False"),
    # the inputs: checked before the run directory is made
    "missing-content": (dict(content="missing.jpg"), r"content: file not found: missing\.jpg; .*"),
    "init-without-image": (dict(init="image"), r"init image needs init_image PATH"),
}


@pytest.mark.parametrize("arguments, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_arguments_are_one_user_error_naming_them_and_nothing_is_written(arguments, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call = {"content": "builtin:tubingen", "style": "builtin:starry_night", **TINY, "log_dir": "run", **arguments}
    with pytest.raises(UserError) as error:
        stylize(**call)
    assert re.fullmatch(message, str(error.value)), str(error.value)
    assert list(tmp_path.iterdir()) == []  # no run directory, no lock, no spilled input


def _photo(tmp_path) -> torch.Tensor:
    return to_tensor(Image.open(make_image(tmp_path / "photo.png", size=(40, 30))))[0]  # [3, 30, 40]


BAD_TENSORS = {
    "batch": (
        torch.full((2, 3, 20, 20), 0.5),
        r"content is a tensor of shape \[2, 3, 20, 20\], a batch of 2 images; give one RGB image: "
        r"\[3, H, W\], \[1, 3, H, W\] or \[H, W, 3\], e\.g\. images\[0\], with one stylize\(\) call per photo",
    ),
    "grey-1HW": (
        torch.full((1, 20, 20), 0.5),
        r"content is a tensor of shape \[1, 20, 20\], one channel \(grey\); give one RGB image: .*image\.expand\(3, -1, -1\).*",
    ),
    "grey-HW": (torch.full((20, 20), 0.5), r"content is a tensor of shape \[20, 20\], one channel \(grey\); .*"),
    "rgba": (
        torch.full((4, 20, 20), 0.5),
        r"content is a tensor of shape \[4, 20, 20\], 4 channels \(RGBA\?\); .*image\[:3\] to drop the alpha channel",
    ),
    "1HW3": (
        torch.full((1, 20, 20, 3), 0.5),
        r"content is a tensor of shape \[1, 20, 20, 3\]; give one RGB image: \[3, H, W\], \[1, 3, H, W\] or \[H, W, 3\]",
    ),
    "0-255-floats": (
        torch.full((3, 20, 20), 200.0),
        r"content's values span \[200, 200\]; give values in \[0, 1\] \(divide 0-255 values by 255, undo any normalisation\)",
    ),
    "nan": (
        torch.full((3, 20, 20), float("nan")),
        r"content holds NaN or infinite values; give an image with values in \[0, 1\]",
    ),
    "int64": (
        torch.zeros((3, 20, 20), dtype=torch.int64),
        r"content is a torch\.int64 tensor; give floats in \[0, 1\] or uint8 in \[0, 255\]",
    ),
    "empty": (torch.zeros((3, 0, 20)), r"content is an empty tensor, of shape \[3, 0, 20\]; give an image with pixels"),
    "not-an-image": (3, r"content is an int; give a file path, an http\(s\) URL, builtin:NAME, a PIL image or an image tensor"),
}


@pytest.mark.parametrize("content, message", BAD_TENSORS.values(), ids=BAD_TENSORS.keys())
def test_tensors_that_are_not_one_rgb_image_are_refused_by_name(content, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        stylize(content, "builtin:starry_night", log_dir="run", **TINY)
    assert re.fullmatch(message, str(error.value)), str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_painting_in_a_list_is_named_by_its_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^style\[1\] is a tensor of shape \[2, 3, 20, 20\], a batch of 2 images; "):
        stylize("builtin:tubingen", ["builtin:starry_night", torch.full((2, 3, 20, 20), 0.5)], log_dir="run", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_hwc_batched_and_uint8_tensors_are_the_same_photo_as_chw(tmp_path):
    chw = _photo(tmp_path)
    results = [
        np.asarray(stylize(photo, "builtin:starry_night", **{**TINY, "max_steps": 1}))
        for photo in (chw, chw.permute(1, 2, 0), chw[None], (chw * 255).round().to(torch.uint8))
    ]
    assert all(np.array_equal(results[0], result) for result in results[1:])


def test_a_log_dir_holding_a_run_or_other_files_is_refused_and_left_as_it_was(tmp_path):
    run = tmp_path / "run"
    run.mkdir()  # an empty directory takes a new run
    stylize("builtin:tubingen", "builtin:starry_night", log_dir=run, **TINY)
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(UserError) as error:
        stylize("builtin:tubingen", "builtin:starry_night", log_dir=run, style_weight=50, **TINY)
    last = run / "checkpoints" / "last.ckpt"
    assert (
        str(error.value) == f"log_dir {run} already holds a run ({last}); give another log_dir, or delete this one to start over"
    )
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before  # not overwritten, no lock left

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as error:
        stylize("builtin:tubingen", "builtin:starry_night", log_dir=mine, **TINY)
    assert (
        str(error.value)
        == f"log_dir {mine} is not empty (it holds notes.txt); give a new or empty log_dir, so that nothing there is overwritten"
    )
    with pytest.raises(
        UserError, match=rf"^log_dir {re.escape(str(mine / 'notes.txt'))} is a file; give a directory, new or empty$"
    ):
        stylize("builtin:tubingen", "builtin:starry_night", log_dir=mine / "notes.txt", **TINY)
    assert os.listdir(mine) == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["content", "style[1]"])
def test_an_image_tensor_larger_than_any_photo_is_refused_from_its_shape(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    huge = torch.zeros(1).expand(3, 40000, 40000)  # 4 bytes, seen as 1.6 billion pixels
    call = (huge, "builtin:starry_night") if where == "content" else ("builtin:tubingen", ["builtin:starry_night", huge])
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        stylize(*call, log_dir="run", **TINY)  # before: an allocator's RuntimeError (19.2 GB asked for)
    assert str(error.value) == (
        f"{where} is a 40000x40000 image (1,600,000,000 pixels), more than the 268,435,456 a photo file may decode to; "
        "resize it first (torch.nn.functional.interpolate, or PIL's Image.thumbnail): it is resized to image_size anyway"
    )
    assert time.monotonic() - started < 10 and list(tmp_path.iterdir()) == []  # nothing allocated, nothing written


def test_paintings_that_cannot_be_held_at_the_working_size_are_refused_from_their_headers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paintings = [str(make_image(tmp_path / "painting.png", size=(64, 64)))] * 1000  # each read at 512x512: 3.9 GB as 8-bit pixels and floats
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        # Before: the run's estimate passed (it counts 3 bytes a painting's pixel, not 15)
        # and it decoded every painting (minutes, ~5 GB, an allocator's RuntimeError where there was less).
        stylize("builtin:tubingen", paintings, max_memory_gb=4, accelerator="cpu", log_dir="run",
                **{**TINY, "image_size": 512, "max_steps": 1})
    assert re.fullmatch(
        r"style: 1000 paintings at image_size 512 \(x style_scale 1\) take about 3\.9 GB of memory as the run's inputs with "
        r"the photo, more than the [\d.]+ [GM]B (that max_memory_gb 4 leaves|available); blend fewer paintings, or lower "
        r"image_size or style_scale, or give check_memory=False to try anyway", str(error.value)), str(error.value)
    assert time.monotonic() - started < 30 and sorted(p.name for p in tmp_path.iterdir()) == ["painting.png"]


@pytest.mark.parametrize("route", ["cli", "stylize"])
def test_the_inputs_are_checked_once_a_fit(route, run_cli, monkeypatch, tmp_path):
    # The preflight reads every input's header and decodes it: the CLI's and stylize()'s check before
    # anything is written is the fit's one (the module takes its plan), not repeated by setup.
    calls = []
    real = preflight.plan_run
    monkeypatch.setattr(preflight, "plan_run", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    if route == "cli":
        run_cli("--trainer.max_steps", "1")
    else:
        stylize("builtin:tubingen", "builtin:starry_night", **{**TINY, "max_steps": 1})
    assert len(calls) == 1  # before: 2, the setup checking again


@pytest.mark.parametrize("kept", [True, False], ids=["log_dir", "no-log_dir"])
def test_ctrl_c_in_a_run_is_the_callers_keyboardinterrupt_and_ctrl_c_still_works_after(kept, tmp_path):
    # Lightning answers a Ctrl-C in its Trainer with sys.exit(1) (a notebook's cell ended in "SystemExit: 1")
    # after setting SIGINT to SIG_IGN: the caller's handler must be the same after the run.
    import signal
    import threading

    # Python's own Ctrl-C handler, whatever this process was started with (a pytest started in the
    # background of a shell ignores SIGINT, and so would the run: the test would never end).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.getsignal(signal.SIGINT)
    run = tmp_path / "run"

    main = threading.main_thread().ident

    def ctrl_c() -> None:
        # Once the run is in its training step (a Ctrl-C while the run sets up saves nothing, and one
        # before stylize() is called is not its): a fixed half second was too little on a loaded machine.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(main)
            while frame is not None and frame.f_code.co_name != "training_step":
                frame = frame.f_back
            if frame is not None:
                break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    # Far more steps than the signal leaves it (minutes at 48 px), so it lands in the run.
    sender = threading.Thread(target=ctrl_c, daemon=True)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            stylize("builtin:tubingen", "builtin:starry_night", **(TINY | {"max_steps": 100_000}), log_dir=run if kept else None)
        sender.join()
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, inherited)
    if kept:  # stopped at a step boundary with its checkpoint, and says where
        assert re.fullmatch(rf"stopped after \d+ steps?; {re.escape(str(tmp_path / 'run'))} holds its checkpoint", str(stopped.value))
        assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    else:
        assert str(stopped.value).endswith("nothing was saved")
