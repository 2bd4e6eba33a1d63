"""Reading images from files, URLs and the built-ins, and writing them atomically."""

import pytest
import torch
from PIL import Image

from nst_lightning.errors import UserError
from nst_lightning.image_io import BUILTIN_IMAGES, load_image, save_image
from tests.conftest import make_image


def test_loads_rgb_in_unit_range_resized_to_long_side(tmp_path):
    path = make_image(tmp_path / "a.png", size=(80, 40))
    image = load_image(str(path), long_side=20)
    assert image.shape == (1, 3, 10, 20)
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": a portrait stored sideways
    make_image(path, size=(40, 20), exif=exif)
    assert load_image(str(path)).shape == (1, 3, 40, 20)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = make_image(tmp_path / f"m{suffix}", mode=mode)
    assert load_image(str(path)).shape == (1, 3, 30, 40)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.new("I;16", (8, 8), 32768).save(path)  # half of 65535
    assert load_image(str(path)).mean().item() == pytest.approx(128 / 255, abs=0.01)


def test_transparency_is_composited_over_white(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert load_image(str(path)).min().item() == 1.0


@pytest.mark.parametrize("name", BUILTIN_IMAGES)
def test_builtin_images(name):
    assert max(load_image(f"builtin:{name}", long_side=64).shape[-2:]) == 64


def test_errors_name_the_option_and_the_fix(tmp_path):
    (tmp_path / "text.jpg").write_text("hello")
    cases = {
        str(tmp_path / "missing.jpg"): "file not found",
        str(tmp_path): "is not a file",
        str(tmp_path / "text.jpg"): "is not a readable image",
        "builtin:mona_lisa": "unknown built-in image",
        "ftp://example.org/a.jpg": "only http:// and https://",
    }
    for source, message in cases.items():
        with pytest.raises(UserError, match=message) as err:
            load_image(source, option="--data.style")
        assert str(err.value).startswith("--data.style: ")
        assert "\n" not in str(err.value)


def test_url_is_downloaded(http_server, tmp_path):
    base, root = http_server
    make_image(root / "style.png", size=(40, 30))
    assert load_image(f"{base}/style.png").shape == (1, 3, 30, 40)
    with pytest.raises(UserError, match="HTTP 404"):
        load_image(f"{base}/missing.png", option="--data.style")
    (root / "page.html").write_text("<html></html>")
    with pytest.raises(UserError, match="not a readable image"):
        load_image(f"{base}/page.html")


def test_save_is_atomic_and_round_trips(tmp_path):
    image = torch.rand(1, 3, 6, 9)
    path = save_image(image, tmp_path / "out" / "result.png")
    assert [p.name for p in path.parent.iterdir()] == ["result.png"]  # no temporary file left
    assert torch.allclose(load_image(str(path)), image, atol=1 / 255)
