"""The quality harness: every option set scored the same way, on a grid of photos x paintings.

For each option set it runs ``python -m nst_lightning batch`` (so every result is an ordinary CLI
run, resumable, with its TensorBoard events) over the photos x paintings, then scores each result
with ``nst_lightning.evaluation.scorer.Scorer``: content distance (``conv4_2``, relative squared error
against the photo) and style distance (mean relative squared error of the Gram matrices of
``conv1_1``...``conv5_1`` against the painting, resized to the result's short side), at the result's
own resolution. "photo itself" scores the unchanged photo against each painting: the reference a
result's style distance should fall well below, at a content distance above 0.

    python benchmarks/evaluate.py --weights ../shared/weights/vgg19_features_tvnorm.pth \\
        --photos ../shared/examples/tubingen.jpg --paintings ../shared/examples/{starry_night,shipwreck,the_scream,woman-with-hat-matisse}.jpg \\
        --out docs/lab/evaluation/defaults
    python benchmarks/evaluate.py --weights W --regions configs/regions.yaml --out docs/lab/evaluation/regions

Writes ``OUT/scores.csv`` (one row per result, with a colour distance to the painting that no loss
optimises, and the run's CPU seconds), ``OUT/table.md`` (means per option set) and
``OUT/tradeoff.png`` (style distance against content distance, each option set's mean and its
results), with ``--sheets`` ``OUT/sheet_<photo>__<painting>.jpg`` (the photo, the painting, each option
set's result), and prints the table. A rerun skips the runs that are done (``batch`` is idempotent).

Speed against a reference, on a machine others share: ``--interleave`` runs every option set on one
pair before the next pair (so that a change of load falls on all of them alike), ``--precision 32``
forces fp32 whatever the device computes natively (an option set that names its precision keeps it), and ``ratios.md`` gives each pair's seconds and
distances as ratios to the first option set's, with the worst pair:

    python benchmarks/evaluate.py --weights W --today --interleave --precision 32 \
        --option-sets "quick before" "pyramid" --photos P --paintings A B C D --out OUT

At equal content preservation: ``--match-content gram`` reruns every other option set on each pair with a
scaled ``--model.style_weight`` (a secant step on log weight against log content, at most two reruns, each in
``WORK/<option set>__style_weight_<weight>``) until its content distance is within 5% of Gram's on that pair,
and keeps the try closest to it; ``matching.md`` gives per pair the weight used, the content ratio (marked where
it still misses), the chosen run's seconds and the CPU seconds of every try. The judge (the scorer) is unchanged.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import io
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark import machine_description  # noqa: E402  (benchmarks/ is on the path as the script's folder)

from nst_lightning.evaluation.scorer import Scorer  # noqa: E402
from nst_lightning.inputs.images import decode_image  # noqa: E402
from nst_lightning.inputs.sources import read_source  # noqa: E402
from nst_lightning.run.precision import cpu_flags  # noqa: E402

# The configs/quick.yaml of before the pyramid (150 Adam steps on the pixels, style weight 10, from the photo half
# way to the painting's colours, the last third decayed to 10%): what today's changes, put back. The earlier rounds'
# option sets were measured over it.
QUICK_ON_PIXELS = ["--trainer.max_steps", "150", "--model.parameterisation", "pixels", "--model.pyramid_band_gain", "1",
                   "--model.style_weight", "10", "--model.init_color_strength", "0.5", "--model.lr_floor", "0.1"]
# The published grid (docs/lab/quality.md) was scored over the earlier configs/quick.yaml: 200 constant Adam
# steps from the photo, in fp32, the last iterate. These put it back; --today scores over today's quick.yaml.
QUICK_200_CONSTANT_FP32 = [*QUICK_ON_PIXELS, "--trainer.max_steps", "200", "--model.lr_schedule", "constant", "--model.init", "content",
                           "--precision_policy", "as_set", "--model.ema_decay", "null"]
PYRAMID_ON_PIXELS = [*QUICK_ON_PIXELS, "--model.parameterisation", "laplacian_pyramid"]  # the earlier rounds' pyramid
PYRAMID_90_LR_03 = ["--trainer.max_steps", "90", "--model.parameterisation", "laplacian_pyramid", "--model.lr", "0.03",
                    "--model.lr_floor", "0.3", "--model.style_weight", "9"]
PYRAMID_95_GAIN_08 = ["--trainer.max_steps", "95", "--model.parameterisation", "laplacian_pyramid", "--model.lr", "0.02",
                      "--model.lr_floor", "0.3", "--model.init_color_strength", "0.25", "--model.pyramid_band_gain", "0.8",
                      "--model.style_weight", "9.25"]
# name -> extra fit options, over --config (configs/quick.yaml: 256 px); the earlier rounds' over QUICK_ON_PIXELS.
OPTION_SETS = {
    "defaults": [],
    # The comparison of style losses: all three on the pixel method their weights were tuned and measured on.
    "gram": [*QUICK_ON_PIXELS],
    "style_weight 5": ["--model.style_weight", "5"],
    "style_weight 20": ["--model.style_weight", "20"],
    "style_weight 40": ["--model.style_weight", "40"],
    "wasserstein": ["--model.style_loss", "wasserstein"],
    "coarse-to-fine": ["--model.stage_steps", "[80, 60]"],
    # With --today: the earlier quick.yaml put back, the reference that speed claims are ratios to.
    "quick before": QUICK_200_CONSTANT_FP32,
    # With --today: the pixels' quick.yaml method (the photo half way to the painting's colours, the last third
    # decayed, averaged) in fewer steps, optimising the image's Laplacian pyramid or its pixels.
    "pyramid 90": [*PYRAMID_ON_PIXELS, "--trainer.max_steps", "90", "--model.pyramid_levels", "5"],
    "pyramid 90 style_weight 9": [*PYRAMID_ON_PIXELS, "--trainer.max_steps", "90", "--model.style_weight", "9"],
    "pyramid 110 style_weight 9": [*PYRAMID_ON_PIXELS, "--trainer.max_steps", "110", "--model.style_weight", "9"],
    "pyramid 110 style_weight 9 bf16": [*PYRAMID_ON_PIXELS, "--trainer.max_steps", "110", "--model.style_weight", "9",
                                        "--trainer.precision", "bf16-mixed"],
    "pyramid 90 bf16": [*PYRAMID_ON_PIXELS, "--trainer.max_steps", "90", "--trainer.precision", "bf16-mixed"],
    # The best of the lab's second round on The Scream: a larger step, a higher floor of its decay.
    "pyramid 90 lr 0.03 floor 0.3 style_weight 9": [*QUICK_ON_PIXELS, *PYRAMID_90_LR_03],
    "pyramid 90 lr 0.03 floor 0.3 style_weight 9 bf16": [*QUICK_ON_PIXELS, *PYRAMID_90_LR_03, "--trainer.precision", "bf16-mixed"],
    # The lab's third round: less of the painting's colours at the start (0.25) keeps more of The Scream's content.
    "pyramid 90 lr 0.03 floor 0.3 style_weight 9 colours 0.25": [*QUICK_ON_PIXELS, *PYRAMID_90_LR_03, "--model.init_color_strength", "0.25"],
    "pyramid 90 lr 0.03 floor 0.3 style_weight 9 colours 0.25 bf16": [*QUICK_ON_PIXELS, *PYRAMID_90_LR_03, "--model.init_color_strength", "0.25",
                                                                     "--trainer.precision", "bf16-mixed"],
    # Coarse-to-fine: 40 steps at 181 px (each ~1/2 of a 256 px step), then 65 at 256 px: ~85 steps' cost.
    "pyramid 40+65 coarse-to-fine style_weight 8": [*QUICK_ON_PIXELS, "--trainer.max_steps", "105", "--model.parameterisation", "laplacian_pyramid",
                                                    "--model.stage_steps", "[40]", "--model.style_weight", "8"],
    # The lab's third round: a smaller step (0.02), each coarser band's step 0.8 times the next finer one's, 95 steps.
    "pyramid 95 gain 0.8 colours 0.25 style_weight 9.25": PYRAMID_95_GAIN_08,
    "pyramid 95 gain 0.8 colours 0.25 style_weight 9.25 bf16": [*PYRAMID_95_GAIN_08, "--trainer.precision", "bf16-mixed"],
    "pixels 90": [*QUICK_ON_PIXELS, "--trainer.max_steps", "90"],
    # The losses on whole distributions, each through its overlay config (its style weight chosen so that
    # the content distance is Gram's within 5%: docs/lab/quality.md).
    "sliced wasserstein": [*QUICK_ON_PIXELS, "--config", "configs/sliced_wasserstein.yaml"],
    "nearest neighbour": [*QUICK_ON_PIXELS, "--config", "configs/nearest_neighbour.yaml"],
}
# How --precision forces every run's precision, whatever --precision_policy would choose.
PRECISION = {"as_set": [], "32": ["--precision_policy", "as_set", "--trainer.precision", "32-true"],
             "bf16": ["--precision_policy", "as_set", "--trainer.precision", "bf16-mixed"]}
# --match-content: each option set's content distance within 5% of the reference set's on every pair, in at most
# two reruns (--match-reruns). Before a pair gives two tries to take a secant through, the content distance is taken to grow as the
# 0.45th power of the style weight (sliced Wasserstein 25 to 40, nearest neighbour 8 to 25 at 256 px:
# docs/lab/quality.md).
MATCH_TOLERANCE = 0.05
MATCH_RERUNS = 2
CONTENT_EXPONENT = 0.45
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def load(source: str, long_side: int | None = None):
    return decode_image(read_source(source, "image"), long_side, source, "image")


def colour_distance(result, painting, bins: int = 8) -> float:
    """The Hellinger distance (0: the same, 1: disjoint) between the joint RGB histograms (``bins`` per
    channel) of the result's and the painting's pixels: a statistic that no style loss optimises
    (they all compare VGG19 features), so it judges them alike."""
    import torch

    def histogram(image):
        codes = (image.clamp(0, 1) * (bins - 1e-6)).long().flatten(2)[0]  # [3, pixels]
        index = (codes[0] * bins + codes[1]) * bins + codes[2]
        return torch.bincount(index, minlength=bins**3).double() / index.numel()

    return float((1 - (histogram(result) * histogram(painting)).sqrt().sum()).clamp_min(0).sqrt())


def until(text: str) -> float:
    """``HH:MM`` (UTC) today, as seconds since the epoch."""
    hours, minutes = map(int, text.split(":"))
    now = time.gmtime()
    return float(calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, hours, minutes, 0)))


def cpu_seconds() -> float:
    """The CPU seconds (user and system, every thread) of this process's finished children: a run's
    cost that another process's load on the same cores changes much less than its wall seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_set(args: argparse.Namespace, scorer: Scorer, name: str, photos: list[str], paintings: list[str],
            out: Path, extra: list[str] = ()) -> list[dict]:
    """One ``batch`` call of option set ``name`` (with ``extra`` fit options after its own) over photos x
    paintings into ``out``, each result scored; a finished run is skipped and keeps its CPU seconds."""
    command = [
        sys.executable, "-m", "nst_lightning", "batch", "--config", str(args.config), "--contents", *photos,
        "--styles", *paintings, "--out", str(out), "--model.weights", args.weights, *args.base, *PRECISION[args.precision],
        *OPTION_SETS[name], *args.fit_args, *extra,
    ]
    print(f"# {name}: {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    done_before = {path.parent.name for path in out.glob("*/cpu_seconds.txt")}
    used = cpu_seconds()
    subprocess.run(command, check=True, cwd=REPO)
    used = cpu_seconds() - used
    with open(out / "summary.csv", newline="") as handle:
        jobs = list(csv.DictReader(handle))
    ran = [job for job in jobs if job["status"] == "done" and job["job"] not in done_before]
    for job in ran:  # this call's CPU seconds (every thread, user and system), shared by the jobs it ran
        (out / job["job"] / "cpu_seconds.txt").write_text(f"{used / len(ran):.1f}\n")
    rows = []
    for job in jobs:
        cpu = out / job["job"] / "cpu_seconds.txt"
        result = load(job["path"])
        photo, painting = load(job["content"]), load(job["style"])
        rows.append({
            "options": name, "photo": Path(job["content"]).stem, "painting": Path(job["style"]).stem,
            "content_distance": scorer.content_distance(result, photo),
            "style_distance": scorer.style_distance(result, painting),
            "colour_distance": colour_distance(result, painting),
            "seconds": float(job["seconds"]), "cpu_seconds": float(cpu.read_text()) if cpu.is_file() else float("nan"),
            "path": job["path"], "content": job["content"], "style": job["style"],
        })
    return rows


def style_weight_of(options: list[str], config: Path) -> float:
    """The style weight a run gets: the last setting of it, in the order the command line reads them (the
    base config first, then each ``--model.style_weight`` and each ``--config`` that sets ``model.style_weight``,
    as they come among the options): a config given after the flag overrides it, as in the loss configs'
    option sets (the pixels' ``--model.style_weight 10``, then ``--config configs/sliced_wasserstein.yaml``)."""
    import yaml

    def of_config(path: str) -> Optional[float]:
        model = (yaml.safe_load((REPO / path).read_text()) or {}).get("model") or {}
        return float(model["style_weight"]) if "style_weight" in model else None

    weight = of_config(str(config))
    for flag, value in zip(options, options[1:]):
        if flag == "--config":
            found = of_config(value)  # a config without a style weight leaves the one before
            weight = weight if found is None else found
        elif flag == "--model.style_weight":
            weight = float(value)
    if weight is None:
        raise ValueError(f"no style weight set for {shlex.join(options)} over {config}")
    return weight


def next_weight(tries: list[tuple[float, float]], target: float, slope: float = CONTENT_EXPONENT) -> float:
    """The style weight whose content distance should be ``target``, from the tries so far (weight, content
    distance): a secant step on log content against log weight through the last two tries, or with one try
    (or a secant that does not rise: the two tries' difference lost in noise) the ``slope`` given. A step is
    at most 4x either way; the weight is rounded to 3 significant digits, so that a resumed run finds its
    runs again."""
    weight, content = tries[-1]
    if len(tries) > 1:
        weight_before, content_before = tries[-2]
        if weight_before != weight:
            secant = math.log(content / content_before) / math.log(weight / weight_before)
            slope = secant if secant > 0.05 else slope
    step = max(-math.log(4), min(math.log(4), math.log(target / content) / slope))
    return float(f"{weight * math.exp(step):.3g}")


def match_content(args: argparse.Namespace, scorer: Scorer, name: str, row: dict, reference: dict) -> dict:
    """Option set ``name``'s result on one pair (``row``), rerun with a scaled style weight until its content
    distance is within MATCH_TOLERANCE of the reference set's on that pair (at most ``--match-reruns`` reruns),
    each rerun into its own folder (``<option set>__style_weight_<weight>``). Returns the try closest to
    the reference's content, with the weight it used, every try and the CPU seconds of them all."""
    target = reference["content_distance"]
    weight = style_weight_of([*OPTION_SETS[name], *args.fit_args], args.config)
    tries = [(weight, row)]
    while abs(tries[-1][1]["content_distance"] / target - 1) > MATCH_TOLERANCE and len(tries) <= args.match_reruns:
        weight = next_weight([(w, r["content_distance"]) for w, r in tries], target)
        out = args.work / f"{name.replace(' ', '_')}__style_weight_{weight:g}"
        finished = (out / f"{row['photo']}__{row['painting']}" / "cpu_seconds.txt").is_file()
        if not finished and args.match_until is not None and time.time() >= args.match_until:
            break  # past --match-until no rerun starts; one that finished before is still read
        [rerun] = [r for r in run_set(args, scorer, name, [row["content"]], [row["style"]], out, ["--model.style_weight", f"{weight:g}"])
                   if (r["photo"], r["painting"]) == (row["photo"], row["painting"])]
        tries.append((weight, rerun))
    weight, best = min(tries, key=lambda t: abs(math.log(t[1]["content_distance"] / target)))
    ratio = best["content_distance"] / target
    return {**best, "style_weight": weight, "content_ratio": ratio, "matched": abs(ratio - 1) <= MATCH_TOLERANCE,
            "tries": " ".join(f"{w:g}:{r['content_distance'] / target:.3f}" for w, r in tries),
            "match_cpu_seconds": sum(r["cpu_seconds"] for _, r in tries)}


def run_grid(args: argparse.Namespace, scorer: Scorer) -> list[dict]:
    rows = []
    sets = args.option_sets
    if args.match_content:  # the reference first on every pair: the others are matched to it
        sets = [args.match_content, *(name for name in sets if name != args.match_content)]
    groups = [(args.photos, args.paintings)]
    if args.interleave:  # every option set on a pair, then the next pair
        groups = [([photo], [painting]) for photo in args.photos for painting in args.paintings]
    for photos, paintings in groups:
        done = [row for name in sets for row in run_set(args, scorer, name, photos, paintings, args.work / name.replace(" ", "_"))]
        if args.match_content:  # every option set's run at its own weight before any rerun: each is there if time runs out
            weight = style_weight_of([*OPTION_SETS[args.match_content], *args.fit_args], args.config)
            references = {(row["photo"], row["painting"]): row for row in done if row["options"] == args.match_content}
            for row in references.values():
                row.update(style_weight=weight, content_ratio=1.0, matched=True, tries="", match_cpu_seconds=row["cpu_seconds"])
            done = [row if row["options"] == args.match_content else
                    match_content(args, scorer, row["options"], row, references[(row["photo"], row["painting"])]) for row in done]
        rows += done
    for photo_source in args.photos:
        photo = load(photo_source, max(load(rows[0]["path"]).shape[-2:]) if rows else 256)
        for painting_source in args.paintings:
            rows.append({
                "options": "photo itself", "photo": Path(photo_source).stem, "painting": Path(painting_source).stem,
                "content_distance": 0.0, "style_distance": scorer.style_distance(photo, load(painting_source)),
                "colour_distance": colour_distance(photo, load(painting_source)), "seconds": 0.0, "path": photo_source,
            })
    return rows


def run_regions(args: argparse.Namespace, scorer: Scorer) -> list[dict]:
    """The regions config, with each way of bringing masks to the layers: each region's result
    scored inside its mask against its own painting and against the other regions' paintings."""
    import yaml

    from nst_lightning.inputs.masks import Region, read_mask

    config = yaml.safe_load(Path(args.regions).read_text())
    photo_source = config["data"]["content"]
    regions = [Region(**r) for r in config["data"]["regions"]]
    rows = []
    for method in ("downsample", "propagate"):
        run = args.work / method
        command = [
            sys.executable, "-m", "nst_lightning", "fit", "--config", str(args.config), "--config", str(args.regions),
            "--model.weights", args.weights, *args.base, "--model.region_masks", method, "--trainer.logger.init_args.save_dir", str(run.parent),
            "--trainer.logger.init_args.name", "", "--trainer.logger.init_args.version", run.name, *args.fit_args,
        ]
        if (run / "checkpoints" / "last.ckpt").is_file():
            command += ["--ckpt_path", "last"]
        print(f"# regions, {method}: {shlex.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, cwd=REPO)
        result = load(str(run / "generated.png"))
        size = tuple(result.shape[-2:])
        photo = load(photo_source, max(size))
        for number, region in enumerate(regions, start=1):
            mask = read_mask(read_source(region.mask, "mask"), size, region.mask, "mask", region.color, region.invert)
            for other in regions:
                for painting in other.styles:
                    rows.append({
                        "options": f"regions ({method})", "photo": f"region {number} ({region.styles[0].split(':')[-1]})",
                        "painting": Path(painting).stem.split(":")[-1], "own": painting in region.styles,
                        "content_distance": scorer.content_distance(result * mask, photo * mask),
                        "style_distance": scorer.style_distance(result, load(painting), mask),
                        "photo_style_distance": scorer.style_distance(photo, load(painting), mask),
                        "seconds": 0.0, "path": str(run / "generated.png"),
                    })
    return rows


def table(rows: list[dict]) -> str:
    colour = any("colour_distance" in row for row in rows)
    cpu = any("cpu_seconds" in row for row in rows)
    lines = ["| options | results | content distance | style distance |" + (" colour distance |" if colour else "") + " seconds |"
             + (" CPU seconds |" if cpu else "")]
    lines.append("| --- " * (5 + colour + cpu) + "|")
    for name in dict.fromkeys(row["options"] for row in rows):
        mine = [row for row in rows if row["options"] == name]
        content = statistics.mean(row["content_distance"] for row in mine)
        style = statistics.mean(row["style_distance"] for row in mine)
        seconds = statistics.mean(row["seconds"] for row in mine)
        colours = f" {statistics.mean(row['colour_distance'] for row in mine):.3f} |" if colour else ""
        cpus = f" {statistics.mean(row.get('cpu_seconds', 0.0) for row in mine):.0f} |" if cpu else ""
        lines.append(f"| {name} | {len(mine)} | {content:.3f} | {style:.3f} |{colours} {seconds:.0f} |{cpus}")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    """Each pair's seconds (wall, and the batch process's CPU seconds where measured) and distances as ratios
    to the first option set's on the same pair, and the worst pair."""
    sets = [name for name in dict.fromkeys(row["options"] for row in rows) if name != "photo itself"]
    by = {(row["options"], row["photo"], row["painting"]): row for row in rows}
    pairs = list(dict.fromkeys((row["photo"], row["painting"]) for row in rows if row["options"] == sets[0]))
    lines = [f"| options | pair | seconds (x {sets[0]}) | CPU seconds (x) | content distance (x) | style distance (x) |",
             "| --- | --- | --- | --- | --- | --- |"]
    keys = ("seconds", "cpu_seconds", "content_distance", "style_distance")
    for name in sets:
        worst = [0.0] * len(keys)
        for pair in pairs:
            mine, ref = by[(name, *pair)], by[(sets[0], *pair)]
            x = [mine.get(key, math.nan) / ref[key] if ref.get(key) else math.nan for key in keys]
            worst = [max(w, v) if v == v else w for w, v in zip(worst, x)]  # a ratio not measured (nan) is left out
            lines.append(f"| {name} | {pair[1]} | {mine['seconds']:.1f} ({x[0]:.2f}) | {mine.get('cpu_seconds', math.nan):.1f} ({x[1]:.2f}) "
                         f"| {mine['content_distance']:.4f} ({x[2]:.3f}) | {mine['style_distance']:.5f} ({x[3]:.3f}) |")
        lines.append(f"| **{name}** | worst pair | ({worst[0]:.2f}) | ({worst[1]:.2f}) | ({worst[2]:.3f}) | ({worst[3]:.3f}) |")
    return "\n".join(lines)


def matching(rows: list[dict]) -> str:
    """With --match-content: per pair and option set, the style weight used, the content distance as a ratio to
    the reference's (marked where it still misses by more than MATCH_TOLERANCE), the distances, the chosen run's
    seconds and CPU seconds, and the CPU seconds of every try (the weights tried: their content ratios)."""
    lines = ["| pair | options | style weight | content (x reference) | style distance | colour distance | seconds "
             "| CPU seconds | CPU seconds, all tries | tries (weight:content ratio) |", "| --- " * 10 + "|"]
    for row in rows:
        if "style_weight" not in row:
            continue
        miss = "" if row["matched"] else f" (**misses {MATCH_TOLERANCE:.0%}**)"
        lines.append(f"| {row['photo']} x {row['painting']} | {row['options']} | {row['style_weight']:g} "
                     f"| {row['content_distance']:.3f} ({row['content_ratio']:.3f}x){miss} | {row['style_distance']:.3f} "
                     f"| {row['colour_distance']:.3f} | {row['seconds']:.0f} | {row['cpu_seconds']:.0f} "
                     f"| {row['match_cpu_seconds']:.0f} | {row['tries'] or 'reference'} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path, width: int = 900, height: int = 620) -> None:
    """Style distance (x, log) against content distance (y): lower left is better on both."""
    margin = 70
    names = list(dict.fromkeys(row["options"] for row in rows))
    xs = [math.log10(max(row["style_distance"], 1e-4)) for row in rows]
    ys = [row["content_distance"] for row in rows]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = 0.0, max(ys) * 1.1 or 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def at(x: float, y: float) -> tuple[float, float]:
        return margin + (x - x0) / (x1 - x0) * (width - 2 * margin - 160), height - margin - (y - y0) / (y1 - y0) * (height - 2 * margin)

    draw.rectangle([margin, margin, width - margin - 160, height - margin], outline="black")
    for exponent in range(math.floor(x0), math.ceil(x1) + 1):
        for mantissa in (1, 2, 5):
            value = math.log10(mantissa) + exponent
            if x0 <= value <= x1:
                x, _ = at(value, y0)
                draw.line([x, height - margin, x, height - margin + 5], fill="black")
                draw.text((x - 12, height - margin + 8), f"{mantissa * 10.0 ** exponent:g}", fill="black")
    for k in range(6):
        value = y0 + (y1 - y0) * k / 5
        _, y = at(x0, value)
        draw.line([margin - 5, y, margin, y], fill="black")
        draw.text((margin - 45, y - 6), f"{value:.2f}", fill="black")
    draw.text((width // 2 - 150, height - 30), "style distance to the painting (log)", fill="black")
    draw.text((8, margin - 30), "content distance to the photo", fill="black")
    for index, name in enumerate(names):
        color = COLORS[index % len(COLORS)]
        mine = [(x, y) for x, y, row in zip(xs, ys, rows) if row["options"] == name]
        for x, y in mine:
            px, py = at(x, y)
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], outline=color)
        mx, my = at(statistics.mean(x for x, _ in mine), statistics.mean(y for _, y in mine))
        draw.ellipse([mx - 7, my - 7, mx + 7, my + 7], fill=color)
        draw.rectangle([width - margin - 140, margin + 22 * index, width - margin - 128, margin + 22 * index + 12], fill=color)
        draw.text((width - margin - 122, margin + 22 * index), name, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def results_grid(rows: list[dict], path: Path, cell: int = 192) -> None:
    """The results side by side: an option set a row, a painting (or region) a column."""
    rows = [row for row in rows if row["options"] != "photo itself" and row.get("own", True)]
    names = list(dict.fromkeys(row["options"] for row in rows))
    columns = list(dict.fromkeys((row["photo"], row["painting"]) for row in rows))
    label = 150
    sheet = Image.new("RGB", (label + len(columns) * cell, len(names) * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for r, name in enumerate(names):
        draw.text((6, r * cell + cell // 2), name, fill="black")
        for row in rows:
            if row["options"] == name:
                c = columns.index((row["photo"], row["painting"]))
                with Image.open(row["path"]) as image:
                    image.thumbnail((cell - 4, cell - 4))
                    sheet.paste(image.convert("RGB"), (label + c * cell + 2, r * cell + 2))
    sheet.save(path, quality=88)


def pair_sheets(rows: list[dict], out: Path, cell: int = 256) -> list[Path]:
    """One sheet per photo x painting: the photo, the painting, then each option set's result, side by
    side at ``cell`` px high, each labelled (``OUT/sheet_<photo>__<painting>.jpg``)."""
    done = [row for row in rows if row["options"] != "photo itself" and row.get("own", True)]
    paths = []
    for photo, painting in dict.fromkeys((row["photo"], row["painting"]) for row in done):
        mine = [row for row in done if (row["photo"], row["painting"]) == (photo, painting)]
        sources = [(photo, mine[0]["content"]), (painting, mine[0]["style"])] + [(row["options"], row["path"]) for row in mine]
        images = []
        for _, source in sources:
            with Image.open(source) as image:
                image = image.convert("RGB")
                images.append(image.resize((max(1, round(image.width * cell / image.height)), cell), Image.LANCZOS))
        sheet = Image.new("RGB", (sum(image.width for image in images) + 4 * (len(images) - 1), cell + 18), "white")
        draw, x = ImageDraw.Draw(sheet), 0
        for (label, _), image in zip(sources, images):
            sheet.paste(image, (x, 18))
            draw.text((x + 2, 3), label, fill="black")
            x += image.width + 4
        path = out / f"sheet_{photo}__{painting}.jpg"
        sheet.save(path, quality=85)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="VGG19 weights for the runs and the scores (--model.weights)")
    parser.add_argument("--photos", nargs="+", default=["builtin:tubingen"])
    parser.add_argument("--paintings", nargs="+", default=["builtin:starry_night", "builtin:the_scream"])
    parser.add_argument("--option-sets", nargs="+", default=list(OPTION_SETS), choices=list(OPTION_SETS))
    parser.add_argument("--regions", type=Path, help="score this regions config instead of the grid")
    parser.add_argument("--config", type=Path, default=REPO / "configs/quick.yaml")
    parser.add_argument("--today", action="store_true", help="over today's quick.yaml, not the one the published grid used")
    parser.add_argument("--interleave", action="store_true", help="every option set on one pair before the next pair")
    parser.add_argument("--precision", choices=list(PRECISION), default="as_set", help="force every run's precision (32: fp32 on any machine)")
    parser.add_argument("--out", type=Path, required=True, help="scores.csv, table.md, tradeoff.png, results.jpg")
    parser.add_argument("--work", type=Path, help="the runs (checkpoints, results); default OUT/runs")
    parser.add_argument("--sheets", action="store_true", help="also OUT/sheet_<photo>__<painting>.jpg: photo, painting, each option set")
    parser.add_argument("--match-content", metavar="OPTION_SET", choices=list(OPTION_SETS),
                        help="rerun every other option set on each pair with a scaled --model.style_weight until its content "
                             "distance is within 5%% of this set's there (at most two reruns); OUT/matching.md lists the tries")
    parser.add_argument("--match-reruns", type=int, default=MATCH_RERUNS,
                        help="at most this many reruns per option set and pair (0: score the runs at their own weights, "
                             "marking those that miss)")
    parser.add_argument("--match-until", metavar="HH:MM", type=until,
                        help="start no rerun after this time of day (UTC; a finished one is still read): on a machine lent "
                             "for a while, the pair's rows then say where they miss")
    parser.add_argument("fit_args", nargs="*", help="more fit options for every run, after --")
    args = parser.parse_args()
    args.base = [] if args.today else QUICK_200_CONSTANT_FP32
    args.out = args.out.absolute()
    args.work = (args.work or args.out / "runs").absolute()
    args.out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(args.weights)
    # The machine, its CPU features and its load at the start: every speed figure holds for these only.
    flags = sorted(cpu_flags() & {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma"})
    machine = (f"{machine_description(torch.device('cpu'))}; CPU features: {', '.join(flags) or 'none listed'}; "
               f"pinned to CPU {', '.join(map(str, sorted(os.sched_getaffinity(0))))}")
    print(machine, file=sys.stderr, flush=True)
    rows = run_regions(args, scorer) if args.regions else run_grid(args, scorer)
    with open(args.out / "scores.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    if not args.regions:
        (args.out / "ratios.md").write_text(machine + "\n\n" + ratios(rows) + "\n")
        text += "\n\n" + ratios(rows)
    if args.match_content:
        (args.out / "matching.md").write_text(matching(rows) + "\n")
        text += "\n\n" + matching(rows)
    figure(rows, args.out / "tradeoff.png")
    results_grid(rows, args.out / "results.jpg")
    if args.sheets:
        pair_sheets(rows, args.out)
    print(text)
    print(json.dumps({"scores": str(args.out / "scores.csv"), "figure": str(args.out / "tradeoff.png")}))


if __name__ == "__main__":
    main()
