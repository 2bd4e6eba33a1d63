"""Reading images from files, URLs and the built-ins, and writing them atomically.

Every kind of bad or unusual input the program may meet has a test here: it either loads correctly
(checked against what it should look like) or raises one ``UserError`` line naming the option.
"""

import os
import struct
import zlib

import pytest
import torch
from PIL import Image, ImageOps

from nst_lightning.inputs import sources as source_io
from nst_lightning.inputs.images import load_image, open_image
from nst_lightning.inputs.sources import BUILTIN_IMAGES
from nst_lightning.outputs.results import save_image  # the writing side is outputs/results.py
from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write
from tests.helpers import make_image


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: bytes = b"") -> bytes:
    """A PNG written by hand, to make files Pillow will not write: 16-bit RGB, or a header that
    declares any size at all over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def load_error(source: str, **kwargs) -> str:
    with pytest.raises(UserError) as err:
        load_image(source, option="--data.content", **kwargs)
    message = str(err.value)
    assert message.startswith("--data.content: ") and "\n" not in message
    return message


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
        # A name longer than the file system allows was an OSError traceback.
        "x" * 300: r"cannot read x{60}\.\.\.x{20} \(File name too long\)",
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
    with pytest.raises(UserError, match="did not return an image"):
        load_image(f"{base}/page.html")


# ---- files that are not quite images ---------------------------------------------------------


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "is empty (0 bytes)" in load_error(str(tmp_path / "empty.jpg"))


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("shopping list: eggs, milk")
    assert "is not a readable image" in load_error(str(tmp_path / "notes.jpg"))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_is_refused_not_filled_with_grey(tmp_path, suffix):
    # Pillow would decode the first half and paint the rest grey with LOAD_TRUNCATED_IMAGES; a
    # result styled from half a photo is worse than an error.
    whole = make_image(tmp_path / f"whole{suffix}", size=(64, 64)).read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(whole[: len(whole) // 2])
    assert "is truncated" in load_error(str(tmp_path / f"cut{suffix}"))


def test_cmyk_jpeg_has_the_right_colours(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "red.jpg")  # cyan 0, magenta+yellow: red
    r, g, b = load_image(str(tmp_path / "red.jpg"))[0, :, 8, 8].tolist()
    assert r > 0.9 and g < 0.1 and b < 0.1


def test_sixteen_bit_rgb_png_is_scaled_to_eight_bits(tmp_path):
    pixel = struct.pack(">HHH", 65535, 32768, 0)
    rows = b"".join(b"\x00" + pixel * 4 for _ in range(2))  # filter byte, then 4 pixels per row
    (tmp_path / "rgb16.png").write_bytes(png_bytes(4, 2, 16, 2, rows))
    image = load_image(str(tmp_path / "rgb16.png"))
    assert image.shape == (1, 3, 2, 4)
    assert image[0, :, 0, 0].tolist() == pytest.approx([1.0, 128 / 255, 0.0], abs=1 / 255)


def test_palette_png_with_transparency_is_composited_over_white(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    for x in range(4):
        for y in range(8):
            image.putpixel((x, y), 1)
    image.save(tmp_path / "p.png", transparency=0)  # index 0 (black) is transparent
    loaded = load_image(str(tmp_path / "p.png"))
    assert loaded[0, :, 0, 7].tolist() == [1.0, 1.0, 1.0]  # transparent: white, not black
    assert loaded[0, :, 0, 0].tolist() == pytest.approx([200 / 255, 30 / 255, 30 / 255])


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = make_image(tmp_path / "g.png", mode="L")
    image = load_image(str(path))
    assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])


def test_exif_rotated_photo_is_upright_and_resized(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = make_image(tmp_path / "sideways.png", size=(80, 40), exif=exif)
    loaded = load_image(str(path), long_side=20)
    assert loaded.shape == (1, 3, 20, 10)
    # The same pixels as rotating first with Pillow's own helper, then resizing.
    expected = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((10, 20), Image.Resampling.LANCZOS)
    expected = torch.tensor(list(expected.getdata()), dtype=torch.float32).view(20, 10, 3).permute(2, 0, 1) / 255
    assert torch.allclose(loaded[0], expected, atol=3 / 255)


def test_image_smaller_than_the_network_minimum_is_scaled_up(tmp_path):
    # 8x6 pixels is below VGG19's 16-pixel minimum, but the long side is resized to image_size.
    path = make_image(tmp_path / "tiny.png", size=(8, 6))
    assert load_image(str(path), long_side=48).shape == (1, 3, 36, 48)


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    # A few hundred bytes that declare 100 (or 400) megapixels: 300 MB (1.2 GB) once decoded.
    # 10,000 px trips this module's limit; 20,000 px trips Pillow's own, earlier, in Image.open.
    (tmp_path / "bomb.png").write_bytes(png_bytes(side, side, 8, 2))
    assert (tmp_path / "bomb.png").stat().st_size < 200
    message = load_error(str(tmp_path / "bomb.png"))
    assert "decompression bomb" in message and "give a smaller image" in message


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    # 24 megapixels for a 48 px result: decoded at 1/8 scale (750x500), never at full size.
    Image.new("RGB", (6000, 4000), (40, 90, 200)).save(tmp_path / "huge.jpg", quality=50)
    data = (tmp_path / "huge.jpg").read_bytes()
    assert open_image(data, long_side=48).size == (750, 500)
    image = load_image(str(tmp_path / "huge.jpg"), long_side=48)
    assert image.shape == (1, 3, 32, 48)
    assert image[0, :, 16, 24].tolist() == pytest.approx([40 / 255, 90 / 255, 200 / 255], abs=3 / 255)


# ---- URLs ----------------------------------------------------------------------------------------


def test_url_follows_a_few_redirects(http_server):
    base, root = http_server
    make_image(root / "a.png", size=(40, 30))
    assert load_image(f"{base}/redirect/{source_io.MAX_REDIRECTS}/a.png").shape == (1, 3, 30, 40)


@pytest.mark.parametrize(
    "path, message",
    [
        (f"redirect/{source_io.MAX_REDIRECTS + 1}/a.png", f"redirects more than {source_io.MAX_REDIRECTS} times"),
        ("loop", "redirects in a loop"),
        ("to-file", "refused: Found - Redirection to url 'file:///etc/passwd' is not allowed"),
        ("to-ftp", "refused: it redirects to 'ftp://127.0.0.1/a.png', which is not an http(s) URL"),
        ("missing.png", "HTTP 404 File not found; check the URL"),
        ("huge", "is larger than 64 MiB"),
    ],
)
def test_url_refusals(http_server, path, message):
    base, root = http_server
    make_image(root / "a.png")
    assert message in load_error(f"{base}/{path}")


def test_url_that_never_answers_times_out(http_server):
    base, _ = http_server
    message = load_error(f"{base}/stall", timeout=0.5)
    assert "timed out (no answer within 0.5 s" in message


def test_url_that_trickles_forever_times_out_in_total(http_server, monkeypatch):
    # Each byte arrives well within the per-read timeout; only the total deadline stops it.
    monkeypatch.setattr(source_io, "URL_TOTAL_TIMEOUT_S", 0.5)
    base, _ = http_server
    assert "timed out" in load_error(f"{base}/trickle", timeout=0.4)


def test_url_body_over_the_size_cap_without_a_declared_length(http_server, monkeypatch):
    monkeypatch.setattr(source_io, "MAX_DOWNLOAD_BYTES", 2**20)
    base, root = http_server
    (root / "big.bin").write_bytes(b"\0" * (2**20 + 1))
    assert "is larger than 1 MiB" in load_error(f"{base}/big.bin")


def test_downloads_are_cached_by_content_hash(http_server, download_cache):
    base, root = http_server
    make_image(root / "c.png", size=(40, 30))
    first = load_image(f"{base}/counted/c.png")
    (root / "c.png").unlink()  # the server no longer has it: only the cache can answer
    assert torch.equal(load_image(f"{base}/counted/c.png"), first)
    assert http_server.hits == {"c.png": 1}
    blobs = sorted(p.name for p in (download_cache / "downloads").iterdir())
    assert len(blobs) == 2 and blobs[0].startswith("sha256-") and blobs[1].startswith("url-")
    # A damaged cached copy is noticed (its hash no longer matches) and fetched again.
    make_image(root / "c.png", size=(40, 30))
    (download_cache / "downloads" / blobs[0]).write_bytes(b"bit rot")
    assert torch.equal(load_image(f"{base}/counted/c.png"), first)
    assert http_server.hits == {"c.png": 2}


def test_non_image_downloads_are_not_cached(http_server, download_cache):
    base, root = http_server
    (root / "page.html").write_text("<html></html>")
    load_error(f"{base}/page.html")
    assert not (download_cache / "downloads").exists()


def test_save_is_atomic_and_round_trips(tmp_path):
    image = torch.rand(1, 3, 6, 9)
    path = save_image(image, tmp_path / "out" / "result.png")
    assert [p.name for p in path.parent.iterdir()] == ["result.png"]  # no temporary file left
    assert torch.allclose(load_image(str(path)), image, atol=1 / 255)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_a_failed_save_leaves_the_old_file_whole(tmp_path):
    old = save_image(torch.zeros(1, 3, 4, 4), tmp_path / "result.png").read_bytes()

    def dies_half_way(handle):  # as a writer killed mid-file would
        handle.write(b"half a PNG")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "result.png", dies_half_way)
    assert (tmp_path / "result.png").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]  # and no temporary left
