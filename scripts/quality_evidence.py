"""Quality evidence for docs/lab/quality.md: the paper's subject in three styles, default vs colour
preservation vs coarse-to-fine, with run times and losses measured one way for every result.

Each result is one real CLI run (``python -m nst_lightning fit``, a subprocess, timed end to end,
startup included) with the shared real VGG19 weights. A run whose ``generated.png`` and
``seconds.txt`` already exist in ``--work`` is reused, so the script can be stopped and restarted.

Losses are measured the same way for every result, whatever its options: the result is resized
(Lanczos) to ``--measure-size`` px, and StyleTransfer's normalised content loss (conv4_2) and style
loss (conv1_1...conv5_1, equal weights) are evaluated against targets from the original photo and the
original painting at that size, with max pooling and no colour transform. So colour-preserving results
score a higher style loss by construction (they keep the photo's colours, not the painting's).

    python scripts/quality_evidence.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --examples ../shared/examples --variants default luminance histogram multiscale
    python scripts/quality_evidence.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --examples ../shared/examples --variants default blend style_scale_0.5 avg_pooling init_image \\
        --styles starry_night --figure-name controls
    python scripts/quality_evidence.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --examples ../shared/examples --variants default wasserstein --figure-name style_loss
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from make_figure import panel, side_by_side  # scripts/ is on sys.path when this runs as a script
from PIL import Image

STYLES = ("starry_night", "shipwreck", "the_scream")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Each variant: extra CLI options on top of configs/quick.yaml (256 px, 200 Adam steps).
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "luminance": ["--model.preserve_colors", "luminance"],
    "histogram": ["--model.preserve_colors", "histogram"],
    # configs/multiscale.yaml: 1024 px in five stages (256, 362, 512, 724, 1024).
    "multiscale": ["--config", str(REPO / "configs" / "multiscale.yaml")],
    # The other controls, shown for one painting each (--styles starry_night): two paintings blended
    # 2:1 (the losses below are measured against the first alone), smaller strokes, the paper's
    # average pooling, and a start from another picture instead of the photo.
    "blend": ["--data.style", "[{examples}/{style}.jpg, {examples}/the_scream.jpg]", "--data.style_weights", "[2, 1]"],
    "style_scale_0.5": ["--data.style_scale", "0.5"],
    "avg_pooling": ["--model.pooling", "avg"],
    "init_image": ["--model.init", "image", "--model.init_image", "{examples}/shipwreck.jpg"],
    # The other style statistic: mean and covariance compared by the 2-Wasserstein distance.
    "wasserstein": ["--model.style_loss", "wasserstein"],
}


def command(args: argparse.Namespace, variant: str, style: str) -> list[str]:
    options = [option.format(examples=args.examples, style=style) for option in VARIANTS[variant]]
    if "--data.style" not in options:
        options += ["--data.style", str(args.examples / f"{style}.jpg")]
    return [
        sys.executable, "-m", "nst_lightning", "fit", "--config", str(REPO / "configs" / "quick.yaml"),
        *options,
        "--model.weights", str(args.weights),
        "--data.content", str(args.examples / "tubingen.jpg"),
        "--trainer.logger.init_args.save_dir", str(args.work),
        "--trainer.logger.init_args.name", variant,
        "--trainer.logger.init_args.version", style,
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


def run(args: argparse.Namespace, variant: str, style: str) -> tuple[Path, float] | None:
    """The result and the run's wall-clock seconds; runs it unless already done."""
    run_dir = args.work / variant / style
    result, seconds = run_dir / "generated.png", run_dir / "seconds.txt"
    if not (result.exists() and seconds.exists()):
        if args.no_run:
            return None
        cmd = command(args, variant, style)
        print(" ".join(cmd[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        seconds.write_text(f"{time.perf_counter() - start:.1f}\n")
    return result, float(seconds.read_text())


class Meter:
    """Content and style losses of any image against one fixed set of targets per style: the style
    loss as Gram matrices (the default) and as the 2-Wasserstein distance, whatever the result's options."""

    def __init__(self, weights: Path, examples: Path, size: int) -> None:
        from nst_lightning import StyleTransfer
        from nst_lightning.inputs.images import load_image

        self.load_image, self.size, self.examples = load_image, size, examples
        # The defaults: conv4_2, conv1_1...conv5_1, equal layer weights.
        self.models = [StyleTransfer(weights=str(weights), style_loss=loss).eval() for loss in ("gram", "wasserstein")]
        self.content = load_image(str(examples / "tubingen.jpg"), size)

    @torch.no_grad()
    def __call__(self, result: Path, style: str) -> tuple[float, float, float]:
        """Content loss, Gram style loss, Wasserstein style loss."""
        image = self.load_image(str(result), self.size)
        if image.shape != self.content.shape:  # a 1-pixel rounding difference of the aspect
            image = torch.nn.functional.interpolate(image, size=self.content.shape[-2:], mode="bicubic").clamp(0, 1)
        losses = []
        for model in self.models:
            model.compute_targets(self.content, self.load_image(str(self.examples / f"{style}.jpg"), self.size))
            losses.append(model(image))
        return losses[0]["content_loss"].item(), losses[0]["style_loss"].item(), losses[1]["style_loss"].item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="VGG19 state dict (.pth)")
    parser.add_argument("--examples", type=Path, required=True, help="folder with tubingen.jpg and the paintings")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the figures go")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nst_quality"), help="run directories")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:4], choices=list(VARIANTS))
    parser.add_argument("--styles", nargs="+", default=list(STYLES), choices=list(STYLES))
    parser.add_argument("--measure-size", type=int, default=256, help="long side at which losses are measured")
    parser.add_argument("--height", type=int, default=256, help="height of each panel in the figures")
    parser.add_argument("--figure-name", help="file name stem of the figures (default: quality)")
    parser.add_argument("--no-run", action="store_true", help="only report and draw the runs already done")
    args = parser.parse_args()
    args.work, args.weights, args.examples = args.work.resolve(), args.weights.resolve(), args.examples.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    results: dict[tuple[str, str], tuple[Path, float]] = {}
    for variant in args.variants:
        for style in args.styles:
            done = run(args, variant, style)
            if done is not None:
                results[variant, style] = done

    meter = Meter(args.weights, args.examples, args.measure_size)
    print(
        f"\n| style | variant | size (px) | run time (s) | content loss | style loss (Gram) | style loss (Wasserstein) |"
        f"  (measured at {args.measure_size} px)"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    photo = args.examples / "tubingen.jpg"
    for style in args.styles:
        c, s, w = meter(photo, style)
        print(f"| {style} | the photo itself | - | - | {c:.3f} | {s:.3f} | {w:.3f} |")
        for variant in args.variants:
            if (variant, style) in results:
                result, seconds = results[variant, style]
                c, s, w = meter(result, style)
                size = max(Image.open(result).size)
                print(f"| {style} | {variant} | {size} | {seconds:.0f} | {c:.3f} | {s:.3f} | {w:.3f} |")
        row = [panel(Image.open(photo), args.height, Image.open(args.examples / f"{style}.jpg"))]
        row += [panel(Image.open(results[v, style][0]), args.height) for v in args.variants if (v, style) in results]
        if len(row) > 1:
            name = f"quality_{style}.jpg" if args.figure_name is None else f"{args.figure_name}_{style}.jpg"
            side_by_side(row, args.out / name)
            print(f"figure: {args.out / name} (photo, then {', '.join(v for v in args.variants if (v, style) in results)})")
    for (variant, style), (result, _) in results.items():
        if variant == "multiscale":  # the full-size result on its own
            Image.open(result).convert("RGB").save(args.out / f"multiscale_{style}.jpg", quality=85, optimize=True)


if __name__ == "__main__":
    main()
