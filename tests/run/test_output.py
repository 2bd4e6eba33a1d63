"""Results as photographers want them (``outputs/results.py``, ``--result.*``, ``run/rerun.py``): tagged with
their colour profile, 8 or 16 bits, carrying the configuration that reruns them."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
import yaml
from PIL import Image, ImageCms

from nst_lightning.__main__ import dispatch
from nst_lightning.outputs.results import (
    CONFIG_KEY,
    embedded_config,
    profile_problem,
    program_version,
    read_config,
    save_image,
    srgb_profile,
    to_pixels,
)
from nst_lightning.run.entry import cli_main
from tests.helpers import DEBUG_CONFIG, checkpoint, make_image, user_error


def read_16_bit(path: Path) -> np.ndarray:
    """A 16-bit result's pixels, ``H x W x 3`` (pypng for PNG: Pillow reads 16-bit RGB as 8 bits)."""
    if path.suffix == ".png":
        width, height, rows, info = png.Reader(filename=str(path)).read()
        assert info["bitdepth"] == 16
        return np.vstack(list(rows)).reshape(height, width, 3)
    pixels = tifffile.imread(path)
    assert pixels.dtype == np.uint16
    return pixels


def final_image(run_dir: Path) -> torch.Tensor:
    """The image of the run's last checkpoint, which is what the result holds (no averaging, no colours)."""
    return checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]["image"].clamp(0, 1)


def swapped_profile() -> bytes:
    """LittleCMS's sRGB profile with its red and blue primaries swapped: converting sRGB pixels into
    it swaps their red and blue channels, an unmistakable sign that a conversion took place."""
    icc = bytearray(srgb_profile())
    count = struct.unpack(">I", icc[128:132])[0]
    entries = {bytes(icc[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    icc[red + 4 : red + 12], icc[blue + 4 : blue + 12] = icc[blue + 4 : blue + 12], icc[red + 4 : red + 12]
    return bytes(icc)


def test_a_result_is_tagged_srgb_and_carries_its_configuration_and_version(run_cli, run_dir):
    run_cli()
    with Image.open(run_dir / "generated.png") as image:
        assert image.info["icc_profile"] == srgb_profile()
        assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))).strip() == "sRGB built-in"
        assert image.info["Software"] == program_version() and program_version().startswith("nst_lightning ")
        # Exactly config.yaml, after one comment line that says what it is.
        assert image.info[CONFIG_KEY] == embedded_config((run_dir / "config.yaml").read_text())
    assert read_config(run_dir / "generated.png") == embedded_config((run_dir / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["result.png", "result.tif"])
def test_a_16_bit_result_round_trips_within_1_of_65535(tmp_path, name):
    image = torch.rand(1, 3, 30, 41)
    path = save_image(image, tmp_path / name, bit_depth=16, config=embedded_config("seed_everything: 0\n"))
    assert [p.name for p in tmp_path.iterdir()] == [name]  # written atomically: no temporary left
    back = read_16_bit(path).astype(np.float64) / 65535
    error = np.abs(back - image[0].permute(1, 2, 0).double().numpy()).max()
    assert error <= 1 / 65535, error * 65535  # 8 bits would be up to 128 times further off
    with Image.open(path) as again:  # and Pillow still reads it (as 8 bits), profile and text included
        assert again.size == (41, 30) and again.info["icc_profile"] == srgb_profile()
    assert read_config(path) == embedded_config("seed_everything: 0\n")


@pytest.mark.parametrize("name", ["generated.png", "generated.tif"])
def test_a_16_bit_run_writes_its_final_image_in_16_bits_with_profile_and_config(run_cli, run_dir, name):
    run_cli("--result.bit_depth", "16", "--result.filename", name)
    pixels = read_16_bit(run_dir / name)
    assert np.array_equal(pixels, to_pixels(final_image(run_dir), 16))
    assert len(np.unique(pixels)) > 256  # more levels than 8 bits have
    with Image.open(run_dir / name) as image:
        assert image.info["icc_profile"] == srgb_profile()
    assert read_config(run_dir / name) == embedded_config((run_dir / "config.yaml").read_text())


def test_a_tiff_keeps_a_non_ascii_configuration_as_yaml_escapes(tmp_path):
    config = embedded_config(yaml.safe_dump({"data": {"content": "photos/café.jpg"}}, allow_unicode=True))
    path = save_image(torch.rand(1, 3, 4, 5), tmp_path / "result.tif", config=config)
    assert read_config(path).isascii()  # TIFF text is 7-bit ASCII
    assert yaml.safe_load(read_config(path)) == {"data": {"content": "photos/café.jpg"}}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--result.bit_depth", "16", "--result.filename", "generated.jpg"], "--result.bit_depth 16 writes PNG or TIFF, not JPEG"),
        (["--result.bit_depth", "16", "--result.color_profile", "photo"], "--result.color_profile photo converts 8-bit results only"),
        (["--result.bit_depth", "12"], 'Parser key "result.bit_depth"'),
    ],
)
def test_result_options_that_cannot_work_are_refused_before_anything_is_written(run_cli, capsys, tmp_path, args, words):
    assert words in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


def test_a_result_option_of_no_known_value_is_refused_as_the_command_line_is_read(parse_refusal):
    assert 'Parser key "result.color_profile"' in parse_refusal("--result.color_profile", "adobe")


def test_color_profile_photo_converts_the_result_to_the_photos_own_profile(run_cli, run_dir, tmp_path):
    icc = swapped_profile()
    make_image(tmp_path / "photo.png", size=(48, 36), icc_profile=icc)
    run_cli("--data.content", "photo.png", "--result.color_profile", "photo", "--result.embed_config", "false")
    with Image.open(run_dir / "generated.png") as image:
        assert image.info["icc_profile"] == icc
        assert CONFIG_KEY not in image.info  # --result.embed_config false
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    srgb = to_pixels(final_image(run_dir), 8).astype(np.int16)
    assert np.abs(pixels - srgb[..., ::-1]).max() <= 1  # converted: red and blue swapped, as the profile says
    assert np.abs(pixels - srgb).max() > 10


def test_only_rgb_profiles_that_can_be_converted_into_are_used():
    assert profile_problem(srgb_profile()) is None and profile_problem(swapped_profile()) is None
    assert profile_problem(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()) == "is a Lab profile, not an RGB one"
    assert profile_problem(b"not a profile" * 20).startswith("cannot be converted into")


def test_fit_config_generated_png_reruns_the_run_into_a_new_directory_with_the_same_pixels(run_cli, run_dir):
    run_cli()
    first = (run_dir / "generated.png").read_bytes()
    cli_main(["fit", "--config", "lightning_logs/debug/generated.png"])
    # A new run beside the first (which still holds its files, untouched), the same image to the bit.
    assert (run_dir / "generated.png").read_bytes() == first
    assert np.array_equal(np.asarray(Image.open(run_dir / "rerun" / "generated.png")), np.asarray(Image.open(run_dir / "generated.png")))
    assert checkpoint(run_dir / "rerun" / "checkpoints" / "last.ckpt")["global_step"] == 4
    # A resumed run's image records --ckpt_path last; its rerun is a fresh run of all its steps, into the
    # next free directory, with the resumed run's result (which equals an uninterrupted one's).
    run_cli("--ckpt_path", "last", "--trainer.max_steps", "6")
    cli_main(["fit", "--config=lightning_logs/debug/generated.png"])
    rerun = run_dir / "rerun_2"
    assert yaml.safe_load((rerun / "config.yaml").read_text())["ckpt_path"] is None
    assert checkpoint(rerun / "checkpoints" / "last.ckpt")["global_step"] == 6
    resumed, again = (np.asarray(Image.open(d / "generated.png"), dtype=np.float64) for d in (run_dir, rerun))
    assert np.abs(resumed - again).max() <= 1


def test_a_config_image_without_a_configuration_is_refused_in_one_line(run_cli, capsys, tmp_path):
    make_image(tmp_path / "photo.png")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "bare.png")  # as --result.embed_config false writes it
    rerun = lambda *args: cli_main(["fit", *args])  # noqa: E731
    for image in ("photo.png", "bare.png"):
        line = user_error(rerun, capsys, "--config", image)
        assert f"--config {image} carries no nst_lightning configuration" in line and "config.yaml" in line
    assert "--config gone.png: no such file" in user_error(rerun, capsys, "--config", "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    assert "--config text.png is not a readable image" in user_error(rerun, capsys, "--config", "text.png")
    assert not (tmp_path / "lightning_logs").exists()


def test_a_batch_group_copies_16_bit_results_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nst_lightning"])
    (tmp_path / "photos").mkdir()
    for i, color in enumerate([(200, 60, 20), (20, 160, 60)]):
        make_image(tmp_path / "photos" / f"p{i}.png", color=color)
    make_image(tmp_path / "s1.png", size=(30, 40), color=(10, 200, 200))
    args = ["--contents", "photos", "--styles", "s1.png", "--out", "styled", "--batch_size", "2", "--result.bit_depth", "16"]
    with pytest.raises(SystemExit) as exit_info:
        dispatch(["batch", "--config", DEBUG_CONFIG, *args])
    assert exit_info.value.code == 0
    (group,) = (tmp_path / "styled" / "groups").iterdir()
    for k, job in enumerate(("p0__s1", "p1__s1")):
        copied = tmp_path / "styled" / job / "generated.png"
        assert copied.read_bytes() == (group / f"generated_{k}.png").read_bytes()
        assert read_16_bit(copied).dtype == np.uint16 and read_config(copied) is not None
