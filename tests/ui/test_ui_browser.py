"""The page in a real browser, as a photographer uses it: headless Chromium (the system's, Debian's
``chromium`` package) driven by Playwright, at a desktop's 1280 px and a phone's 390 px, against the
session's real server (``configs/debug.yaml``: 48 px, random weights). Each state is a screenshot in the
test's directory, copied to ``$NST_TEST_ARTIFACTS`` when that is set (CI keeps them); the README's
picture is not a test's: ``scripts/page_screenshot.py`` makes it from a real run."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.video.clips import make_pan_clip

# One worker runs every test on the session's page server (pyproject: --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_server")]
ERROR_STATE = """() => Array.from(document.querySelectorAll('.error, [data-testid="error"]'))
    .filter(e => !e.closest('[data-testid="toast-body"]') && e.offsetParent !== null).map(e => e.outerHTML.slice(0, 200))"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def system_chromium() -> str:
    found = os.environ.get("NST_LIGHTNING_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; or set NST_LIGHTNING_CHROMIUM)")
    return found


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason='Playwright is not installed: pip install -e ".[test]"')
    executable = system_chromium()
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """The page whole, in the test's directory and in ``$NST_TEST_ARTIFACTS`` (when set)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    if os.environ.get("NST_TEST_ARTIFACTS"):
        artifacts = Path(os.environ["NST_TEST_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, artifacts / path.name)
    return path


def wait_for(condition, what: str, seconds: float = 120.0, page=None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}; the page said: {page.locator('body').inner_text()[-1500:] if page else ''}"
        time.sleep(0.05)


def set_number(page, elem_id: str, value: int) -> None:
    """A slider's number box: typed in, as a person does."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.parametrize("width", [1280, 390])
def test_a_photo_run_in_pictures_before_during_and_after(server, browser, tmp_path, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server.url)
    page.locator("#photo img").wait_for()  # the built-in photo, shown as a picture before anything is done
    screenshot(page, tmp_path, f"photo-{width}-before")
    assert page.evaluate(OVERFLOW) <= 0  # nothing cut off or scrolled sideways, at a phone's width too
    # The inputs are image components: an upload shows as its thumbnail, in the built-in one's place.
    page.locator("#photo input[type=file]").set_input_files(str(server.images / "photo.png"))
    wait_for(lambda: "photo.png" in (page.locator("#photo img").first.get_attribute("src") or ""), "no thumbnail of the upload", 30, page)
    # A built-in painting takes the painting box's place as a click; an upload then takes the built-in's.
    page.locator("#painting-choices img").nth(2).click()
    wait_for(lambda: ".builtin/the_scream.jpg" in (page.locator("#painting1 img").first.get_attribute("src") or ""), "no built-in painting", 30, page)
    page.locator("#painting1 input[type=file]").set_input_files(str(server.images / "painting.png"))
    wait_for(lambda: "painting.png" in (page.locator("#painting1 img").first.get_attribute("src") or ""), "no thumbnail of the painting", 30, page)
    set_number(page, "size", 48)
    set_number(page, "steps", 20)
    page.locator("#stylise").click()
    status = page.locator("#status")
    wait_for(lambda: "of 20" in status.inner_text() or "Done" in status.inner_text(), "the run did not start", 60, page)
    screenshot(page, tmp_path, f"photo-{width}-during")
    wait_for(lambda: page.locator("#compare img").count() == 2, "no before and after", 120, page)
    assert "Done: 20 steps" in status.inner_text()
    about = page.locator("#about").inner_text()
    assert "Photo yours (photo.png)" in about and "Painting yours" in about and "Steps 20" in about  # its settings in words
    assert page.locator("#settings").is_visible() and page.locator('#result a[download="generated.png"]').count() == 1
    assert page.evaluate(ERROR_STATE) == [] and page.evaluate(OVERFLOW) <= 0
    screenshot(page, tmp_path, f"photo-{width}-after")


def test_a_file_that_is_not_a_picture_is_one_message_and_nothing_else_is_an_error(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.locator("#photo img").wait_for()
    shown = page.locator("#photo img").first.get_attribute("src")
    # A text file is refused in the browser as it is chosen, in plain words, and the photo stays.
    page.locator("#photo input[type=file]").set_input_files(str(server.images / "notes.txt"))
    toast = page.locator('[data-testid="toast-text"]')
    wait_for(lambda: toast.count() == 1 and "not a picture" in toast.inner_text(), "no refusal of the text file", 30, page)
    assert toast.inner_text() == "notes.txt is not a picture: choose a photo or painting saved as JPEG, PNG, WebP or TIFF."
    assert page.locator("#photo img").first.get_attribute("src") == shown
    assert page.evaluate(ERROR_STATE) == []
    screenshot(page, tmp_path, "refused-text-file")
    page.locator('[data-testid="toast-close"]').click()
    # Closed, it fades out: gone before the next upload, so a toast at the end is a new one.
    wait_for(lambda: toast.count() == 0, "the refusal did not close", 30, page)
    # A text file named .png passes the browser; the run refuses it: one line in the status, nothing else red.
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture\n")
    page.locator("#photo input[type=file]").set_input_files(str(fake))
    wait_for(lambda: "holiday.png" in (page.locator("#photo img").first.get_attribute("src") or ""), "the upload did not arrive", 30, page)
    page.locator("#stylise").click()
    message = page.locator(".nst-message")
    wait_for(lambda: message.count() == 1, "no message", 60, page)
    text = message.inner_text()
    assert text.startswith("--data.content: holiday.png is not a readable image") and "\n" not in text.strip(), text
    assert str(server.runs) not in page.locator("body").inner_text()  # no server path anywhere
    assert page.evaluate(ERROR_STATE) == [] and toast.count() == 0
    screenshot(page, tmp_path, "refused-by-the-run")


def test_a_clip_run_shows_its_frames_and_ends_with_a_playable_video(server, browser, tmp_path):
    clip = make_pan_clip(tmp_path / "pan.mp4", count=4)  # 4 frames at 12 fps, with sound
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.get_by_role("tab", name="Video").click()
    page.locator("#clip input[type=file]").set_input_files(str(clip))
    page.locator("#clip video").wait_for()
    set_number(page, "clip-steps", 2)
    set_number(page, "clip-later", 1)
    screenshot(page, tmp_path, "clip-1280-before")
    page.locator("#stylise-clip").click()
    status, frames, counters, during = page.locator("#clip-status"), page.locator("#clip-frames img"), set(), False
    deadline = time.monotonic() + 180
    while "Done" not in status.inner_text():
        assert time.monotonic() < deadline and page.locator(".nst-message").count() == 0, page.locator("body").inner_text()[-1500:]
        text = status.inner_text()
        if text.startswith("frame "):
            counters.add(text.split(",")[0])
        if frames.count() and not during:
            screenshot(page, tmp_path, "clip-1280-during")
            during = True
        time.sleep(0.1)
    assert during and len(counters) >= 2 and "Done: 4 frames" in status.inner_text(), counters  # the counter went up as frames finished
    assert frames.count() == 4  # each frame shown as it was finished
    video = page.locator("#clip-video video")
    video.wait_for()
    wait_for(lambda: page.evaluate("() => document.querySelector('#clip-video video').readyState") >= 1, "the video does not load", 30, page)
    duration = page.evaluate("() => document.querySelector('#clip-video video').duration")
    assert 4 / 12 - 0.05 < duration < 4 / 12 + 0.1, duration  # the clip's 4 frames at its 12 fps
    assert page.evaluate(ERROR_STATE) == []
    screenshot(page, tmp_path, "clip-1280-after")
