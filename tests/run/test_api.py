"""stylize(): the Python API, on tiny images with untrained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning import stylize
from nst_lightning.inputs.images import load_image
from nst_lightning.utilities.errors import UserError
from tests.helpers import checkpoint, make_image


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255


TINY = dict(image_size=48, max_steps=3, weights="random", progress_bar=False)


def test_paths_give_a_pil_image_and_leave_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = stylize("builtin:tubingen", "builtin:the_scream", **TINY)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (48, 36)
    assert list(tmp_path.iterdir()) == []  # no logs, no checkpoints unless asked


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
