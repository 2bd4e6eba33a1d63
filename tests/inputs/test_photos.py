"""Photographs as they come in: colour profiles (Adobe RGB, Display P3, CMYK, grey), HEIF/HEIC and
AVIF, camera files of 100 to 200 megapixels, 32-bit and floating-point TIFFs.

The colour reference is littlecms itself (``PIL.ImageCms.profileToProfile`` on the file's own pixels):
a decoded photo must be within one level of it, and each case also checks that ignoring the profile
would have been far off, so that the test can fail.
"""

import io
import re
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

from nst_lightning.batch.plan import sources as batch_sources
from nst_lightning.inputs import images
from nst_lightning.inputs.images import (
    MAX_DECODED_PIXELS,
    MAX_PIXELS,
    PIXELS_PER_BYTE,
    decode_pixels,
    header_size,
    load_image,
    open_image,
)
from nst_lightning.inputs.masks import read_mask
from nst_lightning.inputs.profiles import (
    ADOBE_RGB_GAMMA,
    ADOBE_RGB_PRIMARIES,
    D65,
    P3_PRIMARIES,
    SRGB_CURVE,
    SRGB_PRIMARIES,
    ProfileIgnored,
    colorants,
    rgb_profile,
)
from nst_lightning.utilities.errors import UserError
from tests.helpers import events, user_error
from tests.inputs.files import cmyk_profile, gray_profile, png_bytes, tiff_bytes

ADOBE_RGB = rgb_profile(ADOBE_RGB_PRIMARIES, D65, (ADOBE_RGB_GAMMA,), "Adobe RGB (1998)")
DISPLAY_P3 = rgb_profile(P3_PRIMARIES, D65, SRGB_CURVE, "Display P3")
PROFILES = {"adobe_rgb": ADOBE_RGB, "display_p3": DISPLAY_P3}


def photo(size=(64, 48), seed=0, noise=12.0) -> Image.Image:
    """Smooth colours plus noise, saturated enough that a profile matters: a photo's statistics in small."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    channels = [128 + 120 * np.sin(x / 9 + phase) * np.cos(y / 7 - phase) for phase in (0.0, 2.1, 4.2)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def saved(image: Image.Image, image_format: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **kwargs)
    return buffer.getvalue()


def pixels(data: bytes, long_side=None) -> np.ndarray:
    """What the program decodes, as ``H x W x 3`` ints."""
    return decode_pixels(data, long_side)[0].permute(1, 2, 0).numpy().astype(int)


def littlecms(data: bytes, profile: bytes) -> np.ndarray:
    """littlecms's sRGB conversion of the file's own pixels (as Pillow decodes them, profile ignored)."""
    with Image.open(io.BytesIO(data)) as image:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.asarray(converted).astype(int)


def as_is(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


# ---- colour profiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "primaries, published",
    [
        # The D50 colorants (rXYZ, gXYZ, bXYZ) of Adobe's "Adobe RGB (1998)" and Apple's "Display P3".
        (ADOBE_RGB_PRIMARIES, [[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]]),
        (P3_PRIMARIES, [[0.51512, 0.29198, 0.15710], [0.24120, 0.69225, 0.06657], [-0.00105, 0.04189, 0.78407]]),
    ],
)
def test_built_profiles_have_the_published_colorants(primaries, published):
    assert np.allclose(colorants(primaries, D65), published, atol=2e-4)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"])
@pytest.mark.parametrize("name", PROFILES)
def test_a_photo_with_a_profile_decodes_as_littlecms_converts_it(name, image_format):
    lossy = {"quality": 95} if image_format in ("JPEG", "WEBP", "HEIF", "AVIF") else {}
    data = saved(photo(), image_format, icc_profile=PROFILES[name], **lossy)
    reference = littlecms(data, PROFILES[name])
    assert np.abs(pixels(data) - reference).max() <= 1
    assert np.abs(as_is(data) - reference).mean() > 3  # what ignoring the profile gave: the test can fail


def test_a_resized_photo_is_converted_too():
    data = saved(photo((128, 96)), "PNG", icc_profile=ADOBE_RGB)
    converted = Image.fromarray(littlecms(data, ADOBE_RGB).astype(np.uint8))
    reference = np.asarray(converted.resize((64, 48), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(pixels(data, 64) - reference).max() <= 1  # converted, then resized as any sRGB photo


def test_a_profile_that_swaps_red_and_blue_turns_red_into_blue():
    swapped = rgb_profile(SRGB_PRIMARIES[::-1], D65, SRGB_CURVE, "blue-green-red")
    data = saved(Image.new("RGB", (8, 8), (255, 0, 0)), "PNG", icc_profile=swapped)
    assert np.abs(pixels(data)[4, 4] - [0, 0, 255]).max() <= 1


def test_cmyk_with_its_profile_is_converted_by_it():
    cmyk = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 4), dtype=np.uint8), "CMYK")
    data = saved(cmyk, "JPEG", icc_profile=cmyk_profile(), quality=95)
    reference = littlecms(data, cmyk_profile())
    assert np.abs(pixels(data) - reference).max() <= 1
    assert np.abs(as_is(data) - reference).mean() > 20  # Pillow's profile-less formula
    assert np.abs(pixels(data, 16) - np.asarray(Image.fromarray(reference.astype(np.uint8)).resize((16, 12)))).mean() < 3


def test_a_grey_photo_with_a_grey_or_an_rgb_profile():
    grey = photo().convert("L")
    data = saved(grey, "PNG", icc_profile=gray_profile(1.8))
    assert np.abs(pixels(data) - littlecms(data, gray_profile(1.8))).max() <= 1
    assert np.abs(as_is(data) - littlecms(data, gray_profile(1.8))).mean() > 5
    # Greys tagged with an RGB profile are that space's greys (Adobe RGB's gamma is not sRGB's curve).
    data = saved(grey, "JPEG", icc_profile=ADOBE_RGB, quality=95)
    with Image.open(io.BytesIO(data)) as image:
        reference = ImageCms.profileToProfile(image.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB)), ImageCms.createProfile("sRGB"))
    assert np.abs(pixels(data) - np.asarray(reference).astype(int)).max() <= 1


def test_a_cielab_tiff_is_converted_from_lab():
    # Lab TIFFs rely on Pillow's own conversion (no profile needed): pinned against littlecms here.
    lab = ImageCms.profileToProfile(photo(), ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), outputMode="LAB")
    data = saved(lab, "TIFF")
    lab_profile, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
    reference = ImageCms.profileToProfile(Image.open(io.BytesIO(data)), lab_profile, srgb, outputMode="RGB")
    assert np.abs(pixels(data) - np.asarray(reference).astype(int)).max() <= 1
    assert np.abs(pixels(data) - np.asarray(photo()).astype(int)).mean() < 2  # and back to the photo, within Lab's 8 bits


def test_a_damaged_or_mismatched_profile_is_ignored_with_a_warning():
    image = photo()
    for data, reason in [
        (saved(image, "PNG", icc_profile=b"not a profile at all"), "is damaged"),
        (saved(image, "PNG", icc_profile=gray_profile(2.2)), "is for GRAY images, but it is a RGB image"),
    ]:
        with pytest.warns(ProfileIgnored, match=reason):
            assert np.array_equal(pixels(data), np.asarray(image).astype(int))


def test_a_heif_with_an_nclx_colour_description_is_converted():
    # HEIF may describe its colours by primaries and curve (nclx) rather than an ICC profile.
    nclx = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6, "full_range_flag": 1}
    data = saved(photo(), "HEIF", quality=95, nclx_profile=nclx)
    reference = littlecms(data, DISPLAY_P3)
    assert np.abs(pixels(data) - reference).max() <= 1
    assert np.abs(as_is(data) - reference).mean() > 3
    plain = saved(photo(), "HEIF", quality=95)  # pillow-heif's default nclx: BT.709 primaries, sRGB's
    assert np.array_equal(pixels(plain), as_is(plain))


def test_a_masks_numbers_are_kept_whatever_its_profile():
    # A label colour is what the editor's picker showed in the mask's own space: converting a
    # Display P3 mask would move #808000 to another colour, and the region would select nothing.
    labels = Image.new("RGB", (40, 30), (0, 0, 0))
    labels.paste((128, 128, 0), (0, 0, 20, 30))
    data = saved(labels, "PNG", icc_profile=DISPLAY_P3)
    mask = read_mask(data, (30, 40), "labels.png", "regions", color="#808000")
    assert mask[0, 0, :, :20].min() == 1 and mask[0, 0, :, 20:].max() == 0


def test_the_run_optimises_the_converted_photo(run_cli, run_dir, tmp_path):
    # The real path: the CLI's datamodule decodes a Display P3 HEIC photo and an Adobe RGB AVIF
    # painting; TensorBoard's input/content is the photo in sRGB, as littlecms converts it.
    data = saved(photo((48, 36)), "HEIF", quality=95, icc_profile=DISPLAY_P3)
    (tmp_path / "photo.heic").write_bytes(data)
    (tmp_path / "painting.avif").write_bytes(saved(photo((40, 40), seed=1), "AVIF", quality=90, icc_profile=ADOBE_RGB))
    run_cli("--data.content", "photo.heic", "--data.style", "painting.avif")
    logged = events(run_dir).Images("input/content")[0].encoded_image_string
    with Image.open(io.BytesIO(logged)) as image:
        content = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(content - littlecms(data, DISPLAY_P3)).max() <= 1
    assert Image.open(run_dir / "generated.png").size == (48, 36)


# ---- HEIF/HEIC and AVIF --------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["HEIF", "AVIF"])
def test_heif_and_avif_decode_upright_and_sized_from_their_headers(image_format):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    data = saved(photo((64, 48), noise=0), image_format, quality=95, exif=exif.tobytes())
    decoded = decode_pixels(data)[0].permute(1, 2, 0).numpy().astype(int)
    assert decoded.shape == (64, 48, 3) and header_size(data) == (64, 48)
    turns = (Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_90)
    upright, wrong = (np.asarray(photo((64, 48), noise=0).transpose(turn)).astype(int) for turn in turns)
    assert np.abs(decoded - upright).mean() < 3 < np.abs(decoded - wrong).mean() / 5  # lossy codecs
    assert decode_pixels(data, 32).shape == (1, 3, 32, 24)


def test_a_heic_from_a_url(http_server):
    # sources.py checks that a download is an image with Pillow: it knows HEIF through pillow-heif's opener.
    base, root = http_server
    (root / "photo.heic").write_bytes(saved(photo(), "HEIF", quality=90))
    assert load_image(f"{base}/photo.heic", 32).shape == (1, 3, 24, 32)


def test_batch_takes_heic_heif_and_avif_files_from_a_directory(tmp_path):
    for name in ("a.heic", "b.heif", "c.avif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = batch_sources(str(tmp_path), "--contents")
    assert found.images == [str(tmp_path / name) for name in ("a.heic", "b.heif", "c.avif")]
    assert found.skipped == [str(tmp_path / "notes.txt")]


# ---- camera files of 100 to 200 megapixels, and bombs ---------------------------------------------


def test_a_201_megapixel_photo_styles_at_reduced_scale(run_cli, run_dir, tmp_path):
    # 16384x12288 (a 200 Mpx phone's size) is over both old limits: this module's 89.5 Mpx, checked
    # before the reduced-scale decode, and Pillow's own 179 Mpx in Image.open. For a 48 px result it
    # decodes at 1/8 scale: 2048x1536 pixels, 3 Mpx. Grey and flat, so that it builds in a second.
    data = saved(Image.new("L", (16384, 12288), 90), "JPEG", quality=50)
    assert 16384 * 12288 > 2 * MAX_PIXELS
    assert open_image(data, 256).size == (2048, 1536)
    assert header_size(data, 256) == (192, 256)
    (tmp_path / "huge.jpg").write_bytes(data)
    run_cli("--data.content", "huge.jpg")
    assert Image.open(run_dir / "generated.png").size == (48, 36)


def test_a_panorama_is_decoded_at_the_scale_its_long_side_allows():
    # Both sides used to have to stay over twice the long side: a 6:1 panorama then decoded at 1/2.
    data = saved(Image.new("RGB", (12000, 2000), (40, 90, 200)), "JPEG", quality=50)
    assert open_image(data, 256).size == (1500, 250)
    assert decode_pixels(data, 256).shape == (1, 3, 43, 256)


def test_a_camera_mpo_is_decoded_at_reduced_scale():
    # Many cameras' JPEGs carry a second picture (MPO): Pillow opens them as MPO, not JPEG.
    data = saved(Image.new("RGB", (4000, 3000), (40, 90, 200)), "MPO", save_all=True, append_images=[photo()])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert open_image(data, 48).size == (500, 375)


def test_the_bound_is_on_what_decoding_costs_against_the_files_bytes():
    side = 9500  # 90 Mpx of grey: just over MAX_PIXELS
    pixels_count = side * side
    assert pixels_count > MAX_PIXELS
    # The same header with a few bytes (a bomb) and with a byte per PIXELS_PER_BYTE pixels (padding).
    bomb = png_bytes(side, side, 0, rows=b"")
    with pytest.raises(UserError, match=f"in only {len(bomb):,} bytes, more than {PIXELS_PER_BYTE} pixels a byte"):
        decode_pixels(bomb, 256)
    with pytest.raises(UserError, match="decompression bomb"):
        header_size(bomb, 256)  # refused from the header, before the memory estimate uses it
    real = png_bytes(side, side, pixels_count // PIXELS_PER_BYTE + 1, rows=bytes((side + 1) * side))
    assert decode_pixels(real, 64).shape == (1, 3, 64, 64)


def test_nothing_decodes_more_than_the_ceiling_whatever_its_bytes():
    side = 16385  # one pixel a side over 16384: 268 Mpx
    data = png_bytes(side, side, (side * side) // PIXELS_PER_BYTE + 1)
    with pytest.raises(UserError, match=f"more than the limit of {MAX_DECODED_PIXELS:,} decoded pixels"):
        decode_pixels(data, 256)


def test_the_bomb_check_does_not_leave_pillows_own_guard_lifted():
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    with pytest.raises(UserError):
        decode_pixels(png_bytes(20000, 20000, 0), 256)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS and images._PILLOW_GUARD.acquire(blocking=False)
    images._PILLOW_GUARD.release()


# ---- 32-bit integer and floating-point TIFFs -------------------------------------------------------


@pytest.mark.parametrize(
    "values, sample_format, expected",
    [
        # Floats are read in 0 to 1 (brighter highlights clip), integers in their type's full range.
        (np.array([[0.0, 0.25, 0.5, 1.0, 1.7]], np.float32), 3, [0, 64, 128, 255, 255]),
        (np.array([[0, 2**30, 2**31, 2**32 - 1, 3 * 2**30]], np.uint32), 1, [0, 64, 128, 255, 191]),
        (np.array([[-5, 0, 2**30, 2**31 - 1, 2**29]], np.int32), 2, [0, 0, 128, 255, 64]),
        (np.array([[-5, 0, 2**14, 2**15 - 1, 2**13]], np.int16), 2, [0, 0, 128, 255, 64]),
    ],
)
def test_high_bit_depth_tiffs_are_scaled_by_their_range(values, sample_format, expected):
    data = tiff_bytes(np.repeat(values, 2, axis=0), sample_format)
    assert pixels(data)[0, :, 0].tolist() == expected


@pytest.mark.parametrize(
    "values, sample_format, message",
    [
        (np.linspace(0, 255, 16, dtype=np.float32).reshape(4, 4), 3, "most of it is white"),  # 0-255 in floats
        (np.arange(16, dtype=np.uint32).reshape(4, 4) * 4000, 1, "it is one flat tone"),  # 16-bit data in 32 bits
        (np.zeros((4, 4, 3), np.float32), 3, "is a TIFF of 32-bit floating-point samples (3 a pixel), which cannot be decoded"),
    ],
)
def test_tiffs_that_their_range_would_empty_are_refused_in_one_line(values, sample_format, message):
    with pytest.raises(UserError, match=re.escape(message)) as err:
        decode_pixels(tiff_bytes(values, sample_format), None, "scan.tif", "--data.content")
    assert str(err.value).startswith("--data.content: scan.tif ") and "\n" not in str(err.value)


def test_a_float_tiff_through_the_cli_is_one_line(run_cli, tmp_path, capsys):
    (tmp_path / "hdr.tif").write_bytes(tiff_bytes(np.zeros((8, 8, 3), np.float32), 3))
    assert "export it as an 8- or 16-bit TIFF" in user_error(run_cli, capsys, "--data.style", "hdr.tif")
    assert not (tmp_path / "lightning_logs").exists()


def test_no_warning_for_ordinary_photos():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_pixels(saved(photo(), "JPEG"), 32)
        decode_pixels(saved(photo(), "PNG", icc_profile=ADOBE_RGB), 32)
