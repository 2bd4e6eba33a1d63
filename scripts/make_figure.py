"""Make the README's picture: the paper's Figure 2 subject in three of its styles.

Runs ``python -m nst_lightning fit`` once per painting (the real CLI, the shared real VGG19 weights),
times each run, and puts the photo and the three results side by side, each painting inset in its
result's corner as in Gatys et al. (2015), Fig. 2.

    python scripts/make_figure.py --weights ../shared/weights/vgg19_features_tvnorm.pth \
        --examples ../shared/examples --out docs/images
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

STYLES = ("shipwreck", "starry_night", "the_scream")
REPO = Path(__file__).resolve().parents[1]


def run_style(args: argparse.Namespace, style: str, work: Path) -> tuple[Path, float]:
    """One CLI run; returns the result's path and the run's wall-clock seconds."""
    command = [
        sys.executable, "-m", "nst_lightning", "fit", "--config", str(REPO / "configs" / args.config),
        "--model.weights", str(args.weights),
        "--data.content", str(args.examples / "tubingen.jpg"),
        "--data.style", str(args.examples / f"{style}.jpg"),
        "--data.image_size", str(args.size),
        "--trainer.max_steps", str(args.steps),
        "--trainer.logger.init_args.save_dir", str(work),
        "--trainer.logger.init_args.version", style,
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=work)
    seconds = time.perf_counter() - start
    result = next(work.rglob(f"{style}/generated.png"))
    return result, seconds


def panel(image: Image.Image, height: int, inset: Image.Image | None = None) -> Image.Image:
    """``image`` scaled to ``height``, with ``inset`` (the painting) framed in its lower-left corner."""
    image = ImageOps.contain(image.convert("RGB"), (10**6, height), Image.Resampling.LANCZOS)
    if inset is not None:
        small = ImageOps.expand(ImageOps.contain(inset.convert("RGB"), (height // 3, height // 3)), 2, "white")
        image.paste(small, (0, image.height - small.height))
    return image


def side_by_side(panels: list[Image.Image], path: Path, quality: int = 85) -> None:
    """The panels in a row, 4 px apart on white, saved as a JPEG."""
    figure = Image.new("RGB", (sum(p.width for p in panels) + 4 * (len(panels) - 1), panels[0].height), "white")
    x = 0
    for p in panels:
        figure.paste(p, (x, 0))
        x += p.width + 4
    figure.save(path, quality=quality, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="VGG19 state dict (.pth)")
    parser.add_argument("--examples", type=Path, required=True, help="folder with tubingen.jpg and the paintings")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the figure goes")
    parser.add_argument("--config", default="quick.yaml", help="config in configs/ to start from")
    parser.add_argument("--size", type=int, default=384, help="long side of each result, pixels")
    parser.add_argument("--steps", type=int, default=300, help="optimisation steps per result")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nst_figure"), help="run directories")
    args = parser.parse_args()
    # The runs happen in --work: absolute paths, so relative ones given here still point at the files.
    args.work, args.weights, args.examples = args.work.resolve(), args.weights.resolve(), args.examples.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    height = 288
    panels = [panel(Image.open(args.examples / "tubingen.jpg"), height)]
    for style in STYLES:
        result, seconds = run_style(args, style, args.work)
        print(f"{style}: {args.size} px, {args.steps} steps, {seconds:.0f} s (whole run, startup included)")
        Image.open(result).convert("RGB").save(args.out / f"tubingen_{style}.jpg", quality=90)
        panels.append(panel(Image.open(result), height, inset=Image.open(args.examples / f"{style}.jpg")))
    side_by_side(panels, args.out / "figure2.jpg", quality=88)
    print(f"figure: {args.out / 'figure2.jpg'}")


if __name__ == "__main__":
    main()
