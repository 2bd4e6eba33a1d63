"""The memory model (nst_lightning/scale/memory.py) against the peak memory of real runs.

Each measurement is a fresh process: a 48 px warm-up run (torch, oneDNN and Lightning's first-call
costs), then ``--steps`` steps at the size measured, through ``Trainer.fit`` with random weights. The
peak restarts (``/proc/self/clear_refs``) when the trainer sets the module up, where the CLI makes its
estimate, so "peak" is what the run adds to the process then, as the estimate is. Identical runs are
repeated: a tiled run's peak varies between them (what the allocator keeps of each tile's freed
working set). Prints a markdown table: size, tile, tiles per pass, estimate, the peaks' min / median /
max, and the estimate over the largest and the smallest peak; ``--raw FILE`` keeps each run's
measurements, and ``--table FILE`` prints them again against the estimate of today's model.

    python benchmarks/memory_model.py --sizes 512 768 1024 --tiles 256 384 --repeats 3 --raw peaks.jsonl
    python benchmarks/memory_model.py --sizes 768 --tiles 256 --precision bf16-mixed --repeats 3 --raw peaks.jsonl
    python benchmarks/memory_model.py --table docs/lab/evaluation/memory/tiled_peaks.jsonl     # docs/lab/performance.md

Each run is ``nst_lightning.evaluation.peak.measure`` (which ``tests/scale/test_memory.py`` uses too).
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Optional

from nst_lightning.evaluation.peak import estimate_now, measure


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024], help="long sides in pixels")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 384], help="tile sizes (0: untiled)")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--steps", type=int, default=2, help="steps of each run (the test's: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="identical runs of each case")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE added to each run's environment")
    parser.add_argument("--raw", help="append each run's measurements to this file, one JSON object a line")
    parser.add_argument("--table", help="measure nothing: the table of the runs in this --raw file, by today's estimate")
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table) as lines:
            runs = [json.loads(line) for line in lines if line.strip()]
        cases = {}
        for run in runs:
            cases.setdefault((run.get("precision", "32"), run["image_size"], run.get("tile_size") or 0, len(run["steps"])), []).append(run)
        print(f"{len(runs)} runs from {args.table}; estimates by today's model")
        print(*HEADER, sep="\n")
        for _, group in sorted(cases.items()):
            print(row(group, estimate_now(group[0])["estimate"]))
        return
    env = dict(item.split("=", 1) for item in args.env)
    print(", ".join([f"precision {args.precision}", f"{args.steps} steps", f"{args.repeats} runs each", *args.env]))
    print(*HEADER, sep="\n")
    for size in args.sizes:
        for tile in args.tiles:
            if tile >= size:
                continue
            options = {"image_size": size, "precision": args.precision, "steps": args.steps, "tile_size": tile or None}
            runs = []
            for _ in range(args.repeats):
                runs.append({**options, **measure(options, env)})
                if args.raw:
                    with open(args.raw, "a") as raw:
                        raw.write(json.dumps(runs[-1]) + "\n")
            print(row(runs, runs[0]["estimate"]), flush=True)


HEADER = (
    "",
    "| size (W x H) | precision | tile | tiles per pass | steps | estimate | peak min / median / max (runs) "
    "| estimate / max | estimate / min | last step: wall s, CPU s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
)


def row(runs: list[dict], estimate: float) -> str:
    """A table row for identical runs (``measure``'s, with their options)."""
    peaks, first = sorted(run["added"] / 1e6 for run in runs), runs[0]
    wall, cpu = (statistics.median(run["steps"][-1][k] for run in runs) for k in range(2))
    return (
        f"| {first['image_size']} ({first['width']}x{first['height']}) | {first.get('precision', '32')} | {first.get('tile_size') or 'untiled'} "
        f"| {first['tiles']} | {len(first['steps'])} | {estimate / 1e6:.0f} MB "
        f"| {peaks[0]:.0f} / {statistics.median(peaks):.0f} / {peaks[-1]:.0f} MB ({len(peaks)}) "
        f"| {estimate / 1e6 / peaks[-1]:.2f} | {estimate / 1e6 / peaks[0]:.2f} | {wall:.1f}, {cpu:.1f} |"
    )


if __name__ == "__main__":
    main()
