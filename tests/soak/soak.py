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

Also (``faults.py``): empty and garbage locks planted before an attempt (a fresh one
must be refused in one line saying how to remove it, a stale one taken over), paintings downloaded
from a flaky server on 127.0.0.1 (each failure one line, then a retry that downloads again), and
``batch`` runs whose output is a small tmpfs that fills up while the batch keeps its books (one line,
then rerun after the disk is enlarged until every job is done).

    python tests/soak/soak.py --runs 30 --jobs 2 --out /tmp/soak

Debug-sized (48-64 px, untrained VGG19, up to 40 steps), so it needs no download and no GPU. Prints
one line per run and a summary; ``--json`` also writes the figures to a file. Exit code 1 if any run
did not finish with a correct image.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from faults import (  # this folder is on sys.path when soak.py runs as a script
    FlakyServer,
    can_mount,
    check,
    environment,
    is_download_failure,
    judge_planted_lock,
    mount_tmpfs,
    plant_lock,
    soak_batch,
)

REPO = Path(__file__).resolve().parents[2]
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
    planted_locks: list[str] = field(default_factory=list)  # "fresh" (refused, then removed) or "stale" (taken over)
    download_failures: int = 0  # attempts that stopped on a failed download, then retried
    batch: dict = field(default_factory=dict)  # a batch run's report (faults.soak_batch)
    skipped: bool = False  # not started: --max-minutes had passed
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def random_options(rng: random.Random, download_share: float = 0.0) -> tuple[list[str], int, int]:
    """Valid options drawn at random: optimizer, init, sizes, schedule, averaging, colours, blends;
    in ``download_share`` of the runs one painting comes from the flaky server (``flaky:NAME``)."""
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
    if rng.random() < download_share:
        styles[0] = "flaky:" + styles[0].removeprefix("builtin:")
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
    env = environment(cwd / "cache")
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
    env = environment(cwd / "cache")
    processes = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[1] for process in processes]
    return [process.returncode for process in processes], outputs


def soak_one(run: Run, root: Path, rng: random.Random, kill_share: float, max_kills: int, twin_share: float = 0.0, disk_share: float = 0.0,
             faults: dict | None = None) -> Run:
    """``faults``: ``server`` (a FlakyServer), ``lock_share``, ``batch`` (this run is a batch)."""
    faults = faults or {}
    start = time.monotonic()
    if start > faults.get("deadline", float("inf")):  # out of time: not started, not counted
        run.skipped = True
        return run
    cwd = root / f"run{run.index:03d}"
    cwd.mkdir(parents=True)
    if faults.get("batch"):
        run.batch = soak_batch(cwd, rng, mount_tmpfs, full_disk=rng.random() < 0.7 and can_mount())
        run.attempts, run.problems = run.batch["attempts"], run.batch.pop("problems")
        run.seconds = time.monotonic() - start
        return run
    if faults.get("server") is not None:  # this run's own URL: its own failures, its own cache entry
        run.args = [arg.replace("flaky:", faults["server"].url(f"run{run.index:03d}", "")[:-4]) for arg in run.args]
    disk = cwd / "lightning_logs"
    # A disk that fills up partway: checkpoints of these runs are 30-200 kB, each event file grows.
    full_disk = rng.random() < disk_share and can_mount() and mount_tmpfs(disk, rng.randint(120, 600))
    try:
        return _soak_one(run, cwd, rng, kill_share, max_kills, twin_share, full_disk, start, faults.get("lock_share", 0.0), faults.get("server"))
    finally:
        if full_disk:
            subprocess.run(["umount", str(disk)], capture_output=True)


def download_problems(run: Run, server: FlakyServer, stderr: str) -> list[str]:
    """A failed download is one line, and happens no more often than the server failed: a later
    attempt must download again, not reuse a broken body."""
    problems = ["a failed download printed a traceback"] if "Traceback" in stderr else []
    if run.download_failures > server.failures_served(f"run{run.index:03d}"):
        problems.append(f"a download failed after the server recovered (a broken body was kept): {stderr.strip().splitlines()[-1][:300]}")
    return problems


def _soak_one(run: Run, cwd: Path, rng: random.Random, kill_share: float, max_kills: int, twin_share: float, full_disk: bool, start: float,
              lock_share: float, server: FlakyServer | None) -> Run:
    base = [
        sys.executable, "-m", "nst_lightning", "fit", "--config", str(REPO / "configs" / "debug.yaml"),
        "--trainer.logger.init_args.name", "soak", "--trainer.enable_progress_bar", "false", *run.args,
        "--verbose",  # Lightning's "`Trainer.fit` stopped" line tells a run that ended from one that was killed
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
        planted = plant_lock(lock.parent, rng) if not lock.exists() and rng.random() < lock_share else None
        download = any("http://127.0.0.1" in arg for arg in run.args)
        if planted == "fresh":  # must be refused in one line: no signal, no twin
            code, _, stderr = attempt(command, cwd, None)
            if download and is_download_failure(code, stderr):  # inputs are read before the lock is taken
                run.download_failures += 1
                run.problems += download_problems(run, server, stderr)
                lock.unlink(missing_ok=True)
                if run.problems:
                    break
                continue
            run.planted_locks.append(planted)
            run.problems += judge_planted_lock(planted, code, stderr, lock.parent)
            if run.problems:
                break
            continue
        if planted == "stale":
            run.planted_locks.append(planted)
        if rng.random() < twin_share and not full_disk and not download and planted is None:
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
        if download and is_download_failure(code, stderr):  # one line, exit 2: try again, as a user would
            run.download_failures += 1
            run.problems += download_problems(run, server, stderr)  # a stale planted lock stays: the next attempt takes it over
            if run.problems:
                break
            continue
        if planted == "stale":
            run.problems += judge_planted_lock(planted, code, stderr, lock.parent)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--kill-share", type=float, default=0.6, help="chance that an attempt is sent a signal")
    parser.add_argument("--max-kills", type=int, default=3, help="interruptions per run at most")
    parser.add_argument("--twin-share", type=float, default=0.15, help="chance that an attempt is started twice at once")
    parser.add_argument("--disk-share", type=float, default=0.2, help="share of runs on a small tmpfs that fills up (root only)")
    parser.add_argument("--lock-share", type=float, default=0.1, help="chance that an attempt finds an empty or garbage run.lock")
    parser.add_argument("--download-share", type=float, default=0.25, help="share of runs with a painting from a flaky local server")
    parser.add_argument("--batch-share", type=float, default=0.15, help="share of runs that are a batch (on a filling tmpfs as root)")
    parser.add_argument("--max-minutes", type=float, help="start no run after this long (the summary counts the runs started)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("soak-runs"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.out.exists() and any(options.out.iterdir()):
        parser.error(f"--out {options.out} is not empty")
    rng = random.Random(options.seed)
    runs = []
    for index in range(options.runs):
        args, max_steps, image_size = random_options(rng, options.download_share)
        runs.append(Run(index, args, max_steps, image_size))
    seeds = [rng.randrange(2**32) for _ in runs]
    batches = {run.index for run in runs if rng.random() < options.batch_share}
    server = FlakyServer(options.seed)
    started = time.monotonic()
    deadline = started + 60 * options.max_minutes if options.max_minutes else float("inf")
    with ThreadPoolExecutor(options.jobs) as pool:
        futures = [
            pool.submit(soak_one, run, options.out, random.Random(seed), options.kill_share, options.max_kills, options.twin_share,
                        options.disk_share, {"server": server, "lock_share": options.lock_share, "batch": run.index in batches,
                                             "deadline": deadline})
            for run, seed in zip(runs, seeds)
        ]
        for future in futures:
            run = future.result()
            if run.skipped:
                continue
            status = "ok  " if run.ok else "FAIL"
            if run.batch:
                print(f"{status} run{run.index:03d} batch of {run.batch['jobs']} jobs x {run.batch['max_steps']} steps, {run.attempts} attempt(s), "
                      f"full disk: {'; '.join(run.batch['disk_full']) or '-'}; {'; '.join(run.problems)}", flush=True)
                continue
            print(f"{status} run{run.index:03d} {run.max_steps:2d} steps, {run.attempts} attempt(s), "
                  f"interrupted: {', '.join(run.interruptions) or '-'}; twins: {', '.join(run.twins) or '-'}; "
                  f"full disk: {', '.join(run.disk_full) or '-'}; planted locks: {', '.join(run.planted_locks) or '-'}; "
                  f"failed downloads: {run.download_failures}; {'; '.join(run.problems)}", flush=True)
    server.close()
    runs = [run for run in runs if not run.skipped]
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
        "planted_locks_fresh_refused_then_removed": sum(k == "fresh" for run in runs for k in run.planted_locks),
        "planted_locks_stale_taken_over": sum(k == "stale" for run in runs for k in run.planted_locks),
        "runs_with_flaky_downloads": sum(any("http://127.0.0.1" in a for a in run.args) for run in runs if not run.batch),
        "download_attempts_failed_then_retried": sum(run.download_failures for run in runs),
        "server_answers": dict(server.served),
        "batches": sum(bool(run.batch) for run in runs),
        "batches_done": sum(bool(run.batch) and run.ok for run in runs),
        "batch_full_disk_stops": sum(len(run.batch.get("disk_full", [])) for run in runs),
        "wall_seconds": round(time.monotonic() - started),
        "seed": options.seed,
    }
    print(json.dumps(summary, indent=2))
    if options.json:
        options.json.write_text(json.dumps({"summary": summary, "runs": [asdict(r) for r in runs]}, indent=2))
    return 0 if summary["finished_with_a_correct_image"] == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
