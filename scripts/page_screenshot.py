"""The README's picture of the page (docs/images/ui.png), from a real run: the real VGG19 weights, a real
photo and painting (the built-in Tübingen and The Starry Night, or the files given), the page's "Quick
preview" preset, in headless Chromium at 1280 px, once the run has finished and its before and after show.

    NST_LIGHTNING_WEIGHTS=../shared/weights/vgg19_features_tvnorm.pth python scripts/page_screenshot.py
    python scripts/page_screenshot.py --photo my.jpg --painting art.jpg --out /tmp/ui.png

It starts ``nst-lightning ui --config configs/quick.yaml`` on a free port of 127.0.0.1 with its runs in a
temporary folder, waits for the page's speed measurement (so the presets show this machine's times),
picks the preset, presses Stylise, and prints how long the run took. Needs Playwright and a Chromium
(``--chromium``, default the system's ``chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH = 1280


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=os.environ.get("NST_LIGHTNING_WEIGHTS"), help="VGG19 weights file (default $NST_LIGHTNING_WEIGHTS)")
    parser.add_argument("--photo", default=None, help="a photo to upload (default: the built-in Tübingen, as the page offers it)")
    parser.add_argument("--painting", default=None, help="a painting to upload (default: the built-in Starry Night)")
    parser.add_argument("--preset", default="Quick preview")
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "ui.png"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not args.weights or not Path(args.weights).is_file():
        parser.error("give the real VGG19 weights: --weights FILE or NST_LIGHTNING_WEIGHTS")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="page-screenshot-") as root:
        port = _free_port()
        log = Path(root) / "server.log"
        command = [sys.executable, "-m", "nst_lightning", "ui", "--config", "configs/quick.yaml", "--model.weights", args.weights,
                   "--port", str(port), "--runs", str(Path(root) / "runs")]
        with open(log, "w") as out:
            server = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(REPO)))
        try:
            _wait(lambda: "serving http" in log.read_text() or server.poll() is not None, 180, "the server did not start")
            if server.poll() is not None:
                print(log.read_text(), file=sys.stderr)
                return 1
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#photo img").wait_for()
                for elem_id, path in (("photo", args.photo), ("painting1", args.painting)):
                    if path:
                        page.locator(f"#{elem_id} input[type=file]").set_input_files(path)
                        _wait(lambda: Path(path).name in (page.locator(f"#{elem_id} img").first.get_attribute("src") or ""), 60, "no upload")
                # The presets show this machine's times once its speed is measured (a short run as the server starts).
                _wait(lambda: "being measured" not in page.locator("#preset").inner_text(), 600, "the speed was not measured")
                page.locator("#preset label").filter(has_text=args.preset).click()
                started = time.monotonic()
                page.locator("#stylise").click()
                _wait(lambda: page.locator("#compare img").count() == 2, 1800, "the run did not finish")
                seconds = time.monotonic() - started
                time.sleep(1.0)  # the slider's pictures decode
                page.mouse.move(0, 0)
                # Down to the end of the result: before and after, and the run's settings beside it.
                bottom = page.evaluate("""() => Math.max(...['#compare', '#about', '#settings'].map(
                    s => document.querySelector(s).getBoundingClientRect().bottom)) + window.scrollY + 16""")
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom}, full_page=True)
                _palette(Path(args.out))
                print(f"{args.preset}: {page.locator('#status').inner_text().strip()} in {seconds:.0f} s (the page's estimate: "
                      f"{page.locator('#preset label').filter(has_text=args.preset).inner_text().strip()}); {args.out}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=120)
    return 0


def _palette(path: Path) -> None:
    """The screenshot in 256 colours: a third of the size for the repository, the page's flat colours kept."""
    from PIL import Image

    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"page_screenshot: {what} within {seconds:.0f} s")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
