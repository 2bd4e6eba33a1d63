"""The page in a real browser: headless Chromium (the system's, Debian's ``chromium`` package) driven
by Playwright. It uploads a photo and a painting, clicks Stylise, watches the preview change and the
result appear, and saves a screenshot: the README's (``docs/images/ui.png``) with
``NST_LIGHTNING_UPDATE_SCREENSHOTS=1``, else one in the test's own directory, so a test run leaves the
tree as it was."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.helpers import REPO

SCREENSHOT = REPO / "docs" / "images" / "ui.png"


def system_chromium() -> str:
    found = os.environ.get("NST_LIGHTNING_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; or set NST_LIGHTNING_CHROMIUM)")
    return found


@pytest.mark.slow
def test_the_page_makes_a_run_in_a_browser(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason='Playwright is not installed: pip install -e ".[test]"')
    executable = system_chromium()
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server.url)
            page.locator("#photo input[type=file]").set_input_files(str(server.images / "photo.png"))
            page.locator("#paintings input[type=file]").set_input_files(str(server.images / "painting.png"))
            page.locator('#paintings [aria-label="painting.png"]').wait_for()  # the upload is done
            page.get_by_label("Size: long side in px (--data.image_size)").fill("64")
            page.get_by_label("Steps (--trainer.max_steps)").fill("24")
            page.get_by_role("button", name="Stylise").click()
            pictures, deadline = set(), time.monotonic() + 60
            result = page.locator('#result a[download="generated.png"]')
            while result.count() == 0:
                assert time.monotonic() < deadline, page.locator("#status").inner_text()
                if page.locator("#preview img").count():
                    pictures.add(page.locator("#preview img").first.get_attribute("src"))
                time.sleep(0.05)
            assert len(pictures) >= 2, pictures  # the picture changed while it painted
            assert "Done: 24 steps" in page.locator("#status").inner_text()
            page.get_by_text("Run folder:").wait_for()
            screenshot = SCREENSHOT if os.environ.get("NST_LIGHTNING_UPDATE_SCREENSHOTS") == "1" else tmp_path / "ui.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
