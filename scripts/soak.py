"""Soak test: many short runs with random valid options, a share of them killed at random moments
(SIGKILL, SIGINT or SIGTERM) and resumed with ``--ckpt_path last`` until they finish; then every run
is checked: exit 0, ``generated.png`` decodes at the right size, ``last.ckpt`` loads with
``weights_only`` and is at ``max_steps``, no temporary file left behind, no lock left.

Also, at random: an attempt started twice at the same moment (exactly one may hold the run: the
other must be refused in one line naming the holder, or find the run finished), and (as root on
Linux) a run whose directory is a small tmpfs that fills up halfway (the run must stop in one line
saying what could not be written and what is intact; the disk is then enlarged, as a user would
free space, and the run resumed). A SIGKILL leaves the run's lock behind: the next attempt must take
it over.

    python scripts/soak.py --runs 30 --jobs 2 --out /tmp/soak

Debug-sized (48-64 px, untrained VGG19, up to 40 steps), so it needs no download and no GPU. Prints
one line per run and a summary; ``--json`` also writes the figures to a file. Exit code 1 if any run
did not finish with a correct image.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
STYLES = ["builtin:starry_night", "builtin:shipwreck", "builtin:the_scream"]
KILL_SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
EXPECTED_CODES = {"SIGKILL": -signal.SIGKILL, "SIGINT": 130, "SIGTERM": 143}


@dataclass
class Run:
    index: int
    args: list[str]
    max_steps: int
    image_size: int
    interruptions: list[str] = field(default_factory=list)  # "SIGINT@step 7", "SIGKILL@setup", ...
    attempts: int = 0
    twins: list[str] = field(default_factory=list)  # outcome of each double start
    disk_full: list[str] = field(default_factory=list)  # what the full disk stopped
    stale_locks_taken_over: int = 0
    signalled_while_exiting: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def random_options(rng: random.Random) -> tuple[list[str], int, int]:
    """Valid options drawn at random: optimizer, init, sizes, schedule, averaging, colours, blends."""
    max_steps = rng.randint(6, 40)
    image_size = rng.choice([48, 56, 64])
    optimizer = rng.choice(["adam", "adam", "lbfgs"])
    args = [
        "--trainer.max_steps", str(max_steps),
        "--data.image_size", str(image_size),
        "--model.optimizer", optimizer,
        "--model.init", rng.choice(["content", "noise"]),
        "--model.pooling", rng.choice(["max", "avg"]),
        "--model.preserve_colors", rng.choice(["none", "luminance", "histogram"]),
        "--model.tv_weight", str(rng.choice([0, 0.01])),
        "--checkpoint.every_n_train_steps", str(rng.randint(1, 5)),
        "--trainer.precision", rng.choice(["32", "32", "bf16-mixed"]),
        "--seed_everything", str(rng.randint(0, 10**6)),
    ]
    styles = rng.sample(STYLES, rng.choice([1, 1, 2]))
    args += ["--data.style", "[" + ",".join(styles) + "]"]
    if len(styles) == 2:
        args += ["--data.style_weights", f"[{rng.randint(1, 3)},{rng.randint(1, 3)}]"]
    if rng.random() < 0.3:
        args += ["--model.stage_steps", f"[{rng.randint(1, max_steps - 1)}]"]  # two stages
    if rng.random() < 0.3:
        args += ["--model.ema_decay", "0.9"]
    return args, max_steps, image_size


def attempt(command: list[str], cwd: Path, kill: tuple[str, bool, float] | None) -> tuple[int, str | None, str]:
    """Run once; with ``kill = (signal name, after_checkpoint, seconds)``, send that signal that long
    after the start (or after the first checkpoint of this attempt appeared) if the run is still going.
    Returns the exit code, where the kill landed (None: it did not) and stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    last = cwd / "lightning_logs" / "soak" / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns if last.exists() else None
    with open(cwd / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        landed = None
        if kill is not None:
            name, after_checkpoint, delay = kill
            if after_checkpoint:  # wait until this attempt has written a checkpoint
                while process.poll() is None and (last.stat().st_mtime_ns if last.exists() else None) == before:
                    time.sleep(0.01)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                changed = last.exists() and last.stat().st_mtime_ns != before
                landed = "training" if changed else "setup"
                process.send_signal(KILL_SIGNALS[name])
        code = process.wait(timeout=600)
        stderr.seek(0)
        return code, landed, stderr.read()


def twin_attempt(command: list[str], cwd: Path) -> tuple[list[int], list[str]]:
    """The same attempt started twice at once; exit codes and stderr of both."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    processes = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[1] for process in processes]
    return [process.returncode for process in processes], outputs


def mount_tmpfs(path: Path, kilobytes: int, remount: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    options = ("remount," if remount else "") + f"size={kilobytes}k"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


def can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


def soak_one(run: Run, root: Path, rng: random.Random, kill_share: float, max_kills: int, twin_share: float = 0.0, disk_share: float = 0.0) -> Run:
    start = time.monotonic()
    cwd = root / f"run{run.index:03d}"
    cwd.mkdir(parents=True)
    disk = cwd / "lightning_logs"
    # A disk that fills up partway: checkpoints of these runs are 30-200 kB, each event file grows.
    full_disk = rng.random() < disk_share and can_mount() and mount_tmpfs(disk, rng.randint(120, 600))
    try:
        return _soak_one(run, cwd, rng, kill_share, max_kills, twin_share, full_disk, start)
    finally:
        if full_disk:
            subprocess.run(["umount", str(disk)], capture_output=True)


def _soak_one(run: Run, cwd: Path, rng: random.Random, kill_share: float, max_kills: int, twin_share: float, full_disk: bool, start: float) -> Run:
    base = [
        sys.executable, "-m", "nst_lightning", "fit", "--config", str(REPO / "configs" / "debug.yaml"),
        "--trainer.logger.init_args.name", "soak", "--trainer.enable_progress_bar", "false", *run.args,
    ]
    last = cwd / "lightning_logs" / "soak" / "checkpoints" / "last.ckpt"
    lock = cwd / "lightning_logs" / "soak" / "run.lock"
    while True:
        run.attempts += 1
        command = base + (["--ckpt_path", "last"] if last.exists() else [])
        if lock.exists():
            run.stale_locks_taken_over += 1  # left by a SIGKILL: this attempt must take it over
        if run.attempts > 30:
            run.problems.append("no end after 30 attempts")
            break
        if rng.random() < twin_share and not full_disk:
            codes, outputs = twin_attempt(command, cwd)
            refused = [k for k, code in enumerate(codes) if code == 2 and "is in use by another run" in outputs[k]]
            if sorted(codes) == [0, 2] and len(refused) == 1:
                run.twins.append("one ran, one refused")
            elif codes == [0, 0]:
                run.twins.append("one after the other")  # the first had finished: the second found it done
            else:
                run.problems.append(f"twin start gave exit codes {codes}: {[o.strip().splitlines()[-1:] for o in outputs]}")
            break
        kill = None
        if len(run.interruptions) < max_kills and rng.random() < kill_share:
            # Half anywhere from the imports on (most land before training: starting takes seconds),
            # half within a few seconds after the attempt's first checkpoint, i.e. mid-training.
            if rng.random() < 0.5:
                kill = (rng.choice(list(KILL_SIGNALS)), False, rng.uniform(0.2, 12.0))
            else:
                kill = (rng.choice(list(KILL_SIGNALS)), True, rng.uniform(0.0, 3.0))
        code, landed, stderr = attempt(command, cwd, kill)
        ended = (stderr.strip().splitlines() or [""])[-1]
        if kill is not None and code == -KILL_SIGNALS[kill[0]] and kill[0] != "SIGKILL" and (
            ended.startswith("`Trainer.fit` stopped") or "could not write" in ended
        ):
            # The signal came after the run had ended (saved, or stopped by the full disk), while
            # the interpreter was finalising: it then dies of the signal, as any program does.
            run.signalled_while_exiting += 1
            code = 0 if ended.startswith("`Trainer.fit` stopped") else 2
        if full_disk and code == 2 and "could not write" in stderr:
            line = stderr.strip().splitlines()[-1]
            if "is intact" not in line and "no checkpoint had been written yet" not in line:
                run.problems.append(f"full disk: the message does not say what is intact: {line}")
            if "Traceback" in stderr:
                run.problems.append("full disk: printed a traceback")
            run.disk_full.append(line.split("could not write ", 1)[1].split(":", 1)[0].rsplit("/", 1)[-1])
            mount_tmpfs(cwd / "lightning_logs", 1024 * 1024, remount=True)  # space freed: go on
            full_disk = False
            if landed is not None:
                run.interruptions.append(f"{kill[0]}@{landed}")
            continue
        if landed is None:
            if code != 0:
                run.problems.append(f"attempt {run.attempts} exited {code}: {stderr.strip().splitlines()[-1:]}")
            break
        name = kill[0]
        run.interruptions.append(f"{name}@{landed}")
        if code not in (0, EXPECTED_CODES[name]):
            run.problems.append(f"{name} gave exit code {code}: {stderr.strip().splitlines()[-1:]}")
            break
        if name != "SIGKILL" and "Traceback" in stderr:
            run.problems.append(f"{name} printed a traceback")
        if code == 0:  # the signal came as it was finishing: nothing left to resume
            break
    run.problems += check(cwd / "lightning_logs" / "soak", run)
    run.seconds = time.monotonic() - start
    return run


def check(run_dir: Path, run: Run) -> list[str]:
    """What is wrong with a finished run's files (empty: nothing)."""
    problems = []
    try:
        with Image.open(run_dir / "generated.png") as image:
            image.load()  # decodes every pixel: a truncated file fails here
            size = image.size
        if max(size) != run.image_size:
            problems.append(f"generated.png is {size[0]}x{size[1]}, long side not {run.image_size}")
    except Exception as err:  # noqa: BLE001 - any failure to decode is the finding
        problems.append(f"generated.png does not decode: {type(err).__name__}: {err}")
        size = None
    for path in sorted((run_dir / "checkpoints").glob("*.ckpt")):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            problems.append(f"{path.name} does not load: {type(err).__name__}")
            continue
        if path.name == "last.ckpt":
            if checkpoint["global_step"] != run.max_steps:
                problems.append(f"last.ckpt is at step {checkpoint['global_step']}, not {run.max_steps}")
            image = checkpoint["state_dict"]["image"]
            if size is not None and tuple(image.shape[-2:]) != (size[1], size[0]):
                problems.append(f"last.ckpt's image is {tuple(image.shape[-2:])}, generated.png {size}")
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        problems.append("no last.ckpt")
    if (run_dir / "run.lock").exists():
        problems.append("run.lock left behind")
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".") and p.is_file()]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--kill-share", type=float, default=0.6, help="chance that an attempt is sent a signal")
    parser.add_argument("--max-kills", type=int, default=3, help="interruptions per run at most")
    parser.add_argument("--twin-share", type=float, default=0.15, help="chance that an attempt is started twice at once")
    parser.add_argument("--disk-share", type=float, default=0.2, help="share of runs on a small tmpfs that fills up (root only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("soak-runs"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.out.exists() and any(options.out.iterdir()):
        parser.error(f"--out {options.out} is not empty")
    rng = random.Random(options.seed)
    runs = []
    for index in range(options.runs):
        args, max_steps, image_size = random_options(rng)
        runs.append(Run(index, args, max_steps, image_size))
    seeds = [rng.randrange(2**32) for _ in runs]
    started = time.monotonic()
    with ThreadPoolExecutor(options.jobs) as pool:
        futures = [
            pool.submit(soak_one, run, options.out, random.Random(seed), options.kill_share, options.max_kills, options.twin_share, options.disk_share)
            for run, seed in zip(runs, seeds)
        ]
        for future in futures:
            run = future.result()
            status = "ok  " if run.ok else "FAIL"
            print(f"{status} run{run.index:03d} {run.max_steps:2d} steps, {run.attempts} attempt(s), "
                  f"interrupted: {', '.join(run.interruptions) or '-'}; twins: {', '.join(run.twins) or '-'}; "
                  f"full disk: {', '.join(run.disk_full) or '-'}; {'; '.join(run.problems)}", flush=True)
    kills = [k for run in runs for k in run.interruptions]
    summary = {
        "runs": len(runs),
        "finished_with_a_correct_image": sum(run.ok for run in runs),
        "runs_interrupted": sum(bool(run.interruptions) for run in runs),
        "interruptions": len(kills),
        "by_signal": {name: sum(k.startswith(name + "@") for k in kills) for name in KILL_SIGNALS},
        "landed_in_setup": sum(k.endswith("@setup") for k in kills),
        "landed_in_training": sum(k.endswith("@training") for k in kills),
        "attempts": sum(run.attempts for run in runs),
        "twin_starts": sum(len(run.twins) for run in runs),
        "twin_one_ran_one_refused": sum(t == "one ran, one refused" for run in runs for t in run.twins),
        "twin_one_after_the_other": sum(t == "one after the other" for run in runs for t in run.twins),
        "full_disk_stops": sum(len(run.disk_full) for run in runs),
        "full_disk_while_writing": sorted({name for run in runs for name in run.disk_full}),
        "stale_locks_taken_over": sum(run.stale_locks_taken_over for run in runs),
        "signalled_while_exiting": sum(run.signalled_while_exiting for run in runs),
        "wall_seconds": round(time.monotonic() - started),
        "seed": options.seed,
    }
    print(json.dumps(summary, indent=2))
    if options.json:
        options.json.write_text(json.dumps({"summary": summary, "runs": [asdict(r) for r in runs]}, indent=2))
    return 0 if summary["finished_with_a_correct_image"] == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
