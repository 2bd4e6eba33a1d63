"""Distance against wall time, one curve per setting: how configs/quick.yaml's and default.yaml's schedules were chosen.

Each setting is an ordinary ``fit`` (over ``--config``, default ``configs/quick.yaml``) of every photo x
painting, one at a time on an otherwise idle machine, checkpointing every ``--every`` steps. Each
checkpoint's image (the averaged one with ``ema_decay``) is scored by the harness's judge
(``nst_lightning.evaluation.scorer``: content and style distance at the image's own size) at the
seconds its file was written, counted from the process's start (imports, weights and targets
included, as a user waits for them). The result itself is scored at the process's end.

    python benchmarks/schedule_curves.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --photos ../shared/examples/tubingen.jpg \\
        --paintings ../shared/examples/{starry_night,shipwreck,the_scream,woman-with-hat-matisse}.jpg \\
        --settings "quick before" "cosine 100" --out /tmp/curves

Prints, per setting, its mean seconds and distances, each against the first setting (the reference)
pair by pair (the worst pair's ratio), and how far the result's style distance is above the best
checkpoint's of its run. Writes ``OUT/curves.csv`` and ``OUT/curves.png`` (style distance against
seconds, the mean over pairs at each checkpoint, one line per setting).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.evaluate import QUICK_200_CONSTANT_FP32, QUICK_ON_PIXELS  # noqa: E402  (the earlier quick.yamls, one definition)
from nst_lightning.evaluation.scorer import Scorer  # noqa: E402
from nst_lightning.inputs.images import decode_image  # noqa: E402
from nst_lightning.inputs.sources import read_source  # noqa: E402

# The earlier configs/default.yaml (1000 constant Adam steps from the photo in fp32), over today's: every option
# the change set, back at the value the old file left it (the module's defaults). CHANGELOG.md's "Upgrading"
# gives the same flags for resuming a run made with it (tests/run/test_default_yaml.py checks them).
DEFAULT_1000_CONSTANT_FP32 = ["--trainer.max_steps", "1000", "--model.init", "content", "--model.init_color_strength", "1",
                              "--model.lr_schedule", "constant", "--model.lr_floor", "0", "--model.lr_decay_fraction", "1",
                              "--model.ema_decay", "null", "--precision_policy", "as_set"]

# Today's configs/default.yaml optimisation (quick.yaml's method at 500 steps), but its precision.
DEFAULT_500_DECAYED_AVERAGED = ["--trainer.max_steps", "500", "--model.init", "painting_colors", "--model.init_color_strength", "0.5",
                                "--model.lr_schedule", "linear", "--model.lr_floor", "0.1", "--model.lr_decay_fraction", "0.33",
                                "--model.ema_decay", "0.9"]

# The lab's fourth-round configs/quick.yaml, over today's: no average of the iterates, one stage.
NO_AVERAGE_ONE_STAGE = [*QUICK_ON_PIXELS, "--model.ema_decay", "null", "--model.stage_steps", "null"]

# name -> fit options over --config. "quick before" is the earlier configs/quick.yaml (200 constant fp32 steps). The
# rows from "constant 100" to "lbfgs 60" were measured over that old quick.yaml (rounds one to three):
# to rerun them as they ran, add the options of "quick before" they do not set themselves.
SETTINGS = {
    # The earlier configs/quick.yaml: what today's changes, put back.
    "quick before": [*QUICK_200_CONSTANT_FP32, "--model.stage_steps", "null"],
    # The fourth round's configs/quick.yaml (no averaged iterates) at 120, 140 and 150 steps.
    "quick after": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "120"],
    "quick after fp32": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "120", "--precision_policy", "as_set"],
    "quick after 140": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "140"],
    "quick after 150": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "150"],
    "quick after 150 sw 10.5": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "150", "--model.style_weight", "10.5"],
    "quick after 150 decay 0.2": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "150", "--model.lr_decay_fraction", "0.2"],
    "quick after 150 lr 0.025": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "150", "--model.lr", "0.025"],
    # The fifth round's configs/quick.yaml: the 150 steps above, output averaged (ema_decay 0.9).
    "quick after 150 ema 0.9": [*QUICK_ON_PIXELS, "--model.stage_steps", "null", "--trainer.max_steps", "150", "--model.ema_decay", "0.9"],
    "quick after 150 ema 0.9 fp32": [*QUICK_ON_PIXELS, "--model.stage_steps", "null", "--trainer.max_steps", "150", "--model.ema_decay", "0.9",
                                     "--precision_policy", "as_set"],
    "quick after 150 fp32": [*NO_AVERAGE_ONE_STAGE, "--trainer.max_steps", "150", "--precision_policy", "as_set"],
    # Over --config configs/default.yaml (512 px): the old default (1000 constant Adam steps from the photo,
    # fp32), put back; and quick.yaml's fifth-round method at half the steps, which default.yaml now is
    # (spelled out, so that the row means the same whatever the config says).
    "default before": DEFAULT_1000_CONSTANT_FP32,
    "default after 500": [*DEFAULT_500_DECAYED_AVERAGED, "--precision_policy", "native_bf16"],
    "default after 500 fp32": [*DEFAULT_500_DECAYED_AVERAGED, "--precision_policy", "as_set"],
    "constant 100": ["--trainer.max_steps", "100", "--model.lr_schedule", "constant", "--model.stage_steps", "null"],
    "cosine 100": ["--trainer.max_steps", "100", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05", "--model.stage_steps", "null"],
    "cosine 100 lr 0.04": ["--trainer.max_steps", "100", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05", "--model.lr", "0.04",
                           "--model.stage_steps", "null"],
    "c2f 181/256 cosine": ["--trainer.max_steps", "120", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05",
                           "--model.stage_steps", "[60]"],
    "c2f 128/181/256 cosine": ["--trainer.max_steps", "130", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05",
                               "--model.stage_steps", "[50, 40]"],
    "cosine 85 lr 0.05": ["--trainer.max_steps", "85", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05", "--model.lr", "0.05",
                          "--model.stage_steps", "null"],
    "cosine 85 lr 0.04": ["--trainer.max_steps", "85", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05", "--model.lr", "0.04",
                          "--model.stage_steps", "null"],
    "linear 85 lr 0.05": ["--trainer.max_steps", "85", "--model.lr_schedule", "linear", "--model.lr_floor", "0.05", "--model.lr", "0.05",
                          "--model.stage_steps", "null"],
    "cosine 200 lr 0.03": ["--trainer.max_steps", "200", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05", "--model.lr", "0.03",
                           "--model.stage_steps", "null"],
    "constant 100 averaged": ["--trainer.max_steps", "100", "--model.lr_schedule", "constant", "--model.ema_decay", "0.9",
                              "--model.stage_steps", "null"],
    "lbfgs painting_colors 85": ["--trainer.max_steps", "85", "--model.optimizer", "lbfgs", "--model.init", "painting_colors",
                                 "--model.lr_schedule", "constant", "--model.stage_steps", "null"],
    "lbfgs painting_colors 85 bf16": ["--trainer.max_steps", "85", "--model.optimizer", "lbfgs", "--model.init", "painting_colors",
                                      "--model.lr_schedule", "constant", "--model.stage_steps", "null", "--trainer.precision", "bf16-mixed"],
    "lbfgs painting_colors 160 bf16": ["--trainer.max_steps", "160", "--model.optimizer", "lbfgs", "--model.init", "painting_colors",
                                       "--model.lr_schedule", "constant", "--model.stage_steps", "null", "--trainer.precision", "bf16-mixed"],
    "cosine 140 lr 0.03 painting_colors bf16": ["--trainer.max_steps", "140", "--model.lr_schedule", "cosine", "--model.lr_floor", "0.05",
                                                "--model.lr", "0.03", "--model.init", "painting_colors", "--model.stage_steps", "null",
                                                "--trainer.precision", "bf16-mixed"],
    "constant 100 painting_colors": ["--trainer.max_steps", "100", "--model.lr_schedule", "constant", "--model.init", "painting_colors",
                                     "--model.stage_steps", "null"],
    "constant 120 painting_colors bf16": ["--trainer.max_steps", "120", "--model.lr_schedule", "constant", "--model.init", "painting_colors",
                                          "--model.stage_steps", "null", "--trainer.precision", "bf16-mixed"],
    "lbfgs 60": ["--trainer.max_steps", "60", "--model.optimizer", "lbfgs", "--model.lr_schedule", "constant", "--model.stage_steps", "null"],
}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def stem(source: str) -> str:
    return Path(source.removeprefix("builtin:")).stem


@functools.lru_cache(maxsize=32)
def load(source: str, long_side: int | None = None) -> torch.Tensor:
    """Decoded once per source and size: each checkpoint of a run scores against the same photo."""
    return decode_image(read_source(source, "image"), long_side, source, "image")


def run_one(args, setting: str, photo: str, painting: str, scorer: Scorer) -> list[dict]:
    name = f"{setting.replace(' ', '_').replace('/', '-')}/{stem(photo)}__{stem(painting)}"
    run_dir = args.out / "runs" / name
    command = [
        sys.executable, "-m", "nst_lightning", "fit", "--config", str(args.config), "--model.weights", args.weights,
        "--data.content", photo, "--data.style", painting, "--checkpoint.every_n_train_steps", str(args.every),
        "--trainer.logger.init_args.save_dir", str(args.out / "runs"), "--trainer.logger.init_args.name", name.split("/")[0],
        "--trainer.logger.init_args.version", name.split("/")[1], *SETTINGS[setting], *args.fit_args,
    ]
    done = run_dir / "curve.json"
    if done.exists():  # scored by an earlier invocation: a rerun goes on where it stopped
        return json.loads(done.read_text())
    if run_dir.exists():  # a run cut short: its times would mix two processes
        shutil.rmtree(run_dir)
    start = time.time()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    total = time.time() - start
    painting_image = load(painting)
    rows = []
    points = [(int(p.stem[4:]), p.stat().st_mtime - start, p) for p in (run_dir / "checkpoints").glob("step*.ckpt")]
    for step, seconds, path in sorted(points):
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        rows.append(_score(scorer, state.get("average.value", state["image"]), photo, painting_image, setting, painting, step, seconds))
    rows.append(_score(scorer, load(str(run_dir / "generated.png")), photo, painting_image, setting, painting, "result", total))
    done.write_text(json.dumps(rows))
    return rows


def _score(scorer, image, photo, painting_image, setting, painting, step, seconds) -> dict:
    image = image.float().clamp(0, 1)
    photo_image = load(photo, max(image.shape[-2:]))
    return {
        "setting": setting, "pair": f"{stem(photo)}__{stem(painting)}", "step": step, "seconds": round(seconds, 2),
        "long_side": max(image.shape[-2:]), "content_distance": scorer.content_distance(image, photo_image),
        "style_distance": scorer.style_distance(image, painting_image),
    }


def summary(rows: list[dict], reference: str) -> str:
    results = {(r["setting"], r["pair"]): r for r in rows if r["step"] == "result"}
    lines = [
        f"| setting | seconds (x {reference}) | content distance | style distance | worst pair: content, style (x {reference}) "
        "| result's style over its run's best |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for (s, _), r in results.items() if s == setting]
        pairs = [r["pair"] for r in mine]
        ref = [results[(reference, p)] for p in pairs]
        seconds = statistics.mean(r["seconds"] for r in mine) / statistics.mean(r["seconds"] for r in ref)
        worst_content = max(r["content_distance"] / q["content_distance"] for r, q in zip(mine, ref))
        worst_style = max(r["style_distance"] / q["style_distance"] for r, q in zip(mine, ref))
        over_best = max(
            r["style_distance"] / min(x["style_distance"] for x in rows if x["setting"] == setting and x["pair"] == r["pair"]
                                      and x["long_side"] == r["long_side"])
            for r in mine
        )
        lines.append(
            f"| {setting} | {statistics.mean(r['seconds'] for r in mine):.0f} ({seconds:.2f}) "
            f"| {statistics.mean(r['content_distance'] for r in mine):.3f} | {statistics.mean(r['style_distance'] for r in mine):.3f} "
            f"| {worst_content:.2f}, {worst_style:.2f} | +{100 * (over_best - 1):.1f}% |"
        )
    return "\n".join(lines)


def figure(rows: list[dict], path: Path, width: int = 900, height: int = 560) -> None:
    """Style distance against seconds: each setting's mean over pairs at each checkpoint."""
    curves = {}
    for setting in dict.fromkeys(r["setting"] for r in rows):
        steps = sorted({r["step"] for r in rows if r["setting"] == setting and r["step"] != "result"})
        curves[setting] = [
            (statistics.mean(r["seconds"] for r in rows if r["setting"] == setting and r["step"] == s),
             statistics.mean(r["style_distance"] for r in rows if r["setting"] == setting and r["step"] == s))
            for s in steps
        ]
    xs = [x for c in curves.values() for x, _ in c]
    ys = [y for c in curves.values() for _, y in c]
    x_max, y_min, y_max = max(xs) * 1.05, min(ys) * 0.95, min(max(ys), 3 * min(ys))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 70, 20, width - 230, height - 50

    def at(x: float, y: float) -> tuple[float, float]:
        y = min(max(y, y_min), y_max)
        return left + (right - left) * x / x_max, bottom - (bottom - top) * (y - y_min) / (y_max - y_min)

    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text((left, bottom + 20), f"seconds from the start (0 to {x_max:.0f})", fill="black")
    draw.text((5, top), f"style\n{y_max:.3f}", fill="black")
    draw.text((5, bottom - 20), f"{y_min:.3f}", fill="black")
    for index, (setting, curve) in enumerate(curves.items()):
        color = COLORS[index % len(COLORS)]
        draw.line([at(x, y) for x, y in curve], fill=color, width=3 if index == 0 else 2)
        for x, y in curve:
            cx, cy = at(x, y)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=color)
        draw.text((right + 10, top + 18 * index), setting + (" (reference)" if index == 0 else ""), fill=color)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--photos", nargs="+", default=["builtin:tubingen"])
    parser.add_argument("--paintings", nargs="+", default=["builtin:starry_night", "builtin:the_scream"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), help="the first is the reference")
    parser.add_argument("--config", type=Path, default=REPO / "configs/quick.yaml")
    parser.add_argument("--every", type=int, default=20, help="checkpoint (and score) every N steps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("fit_args", nargs="*", help="more fit options for every run, after --")
    args = parser.parse_args()
    args.out, args.config = args.out.absolute(), args.config.absolute()
    args.out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(args.weights)
    rows = []
    for setting in args.settings:
        for photo in args.photos:
            for painting in args.paintings:
                rows += run_one(args, setting, photo, painting, scorer)
                print(f"# {setting} {stem(photo)} x {stem(painting)}: {rows[-1]}", file=sys.stderr, flush=True)
    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure(rows, args.out / "curves.png")
    print(summary(rows, args.settings[0]))


if __name__ == "__main__":
    main()
