"""``python -m nst_lightning batch``: every photo in every painting's style, resumable, on one
machine, on Ray or as a SLURM array.

    python -m nst_lightning batch --config configs/quick.yaml \\
        --contents photos/ --styles "[starry.jpg, scream.jpg]" --out styled/

Every other option (``--model.*``, ``--data.image_size``, ``--trainer.*``, ``--config``) is passed to
each job's ``fit`` as it is, and checked once before any job starts (``fit_options.py``). Each job
runs in ``OUT/<photo>__<painting>/`` (``jobs.py``); rerunning the same command skips finished jobs,
resumes started ones from their checkpoints (and finished ones, when ``--trainer.max_steps`` has
grown) and retries failed ones. ``OUT/summary.csv`` and ``OUT/contact_sheet.jpg`` are updated as jobs
finish.

Exit codes: 0 every job done; 1 some jobs failed (each named, with its reason); 2 an error in the
batch's options, or a full disk (one line: which file, and that a rerun goes on); 128 + N stopped by
signal N (rerun to go on).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from nst_lightning.batch.jobs import finished_steps, fit_arguments, is_done
from nst_lightning.batch.launchers import LAUNCHERS
from nst_lightning.batch.plan import Job, group_jobs, plan_jobs, shard, sources
from nst_lightning.batch.report import Progress, write_contact_sheet, write_summary
from nst_lightning.run.fit_options import FitSettings, UsageError, check_fit_options, split_command_line
from nst_lightning.run.launchers import parse_shard
from nst_lightning.utilities.errors import RunInterrupted, UserError
from nst_lightning.utilities.files import DISK_ERRNOS, WriteFailed, describe_write_failure
from nst_lightning.utilities.signals import sigterm_between_runs

# Set by the batch for each job: giving them would point every job at the same run.
OWN_OPTIONS = ("--data.content", "--data.style", "--ckpt_path", "--trainer.logger")
SHEET_EVERY_S = 30.0  # the contact sheet is redrawn at most this often while jobs finish (and at the end)
# After a full disk: what is kept (every file is written whole or not at all) and how to go on.
DISK_FULL_NEXT = (
    "the files written before are intact: free some space and rerun the same command, which skips the finished jobs "
    "and resumes the others from their checkpoints"
)


@dataclass
class BatchOptions:
    contents: list[str]
    styles: list[str]
    out: Path
    batch_size: int = 1
    launcher: str = "sequential"
    ray_address: Optional[str] = None
    cpus_per_job: Optional[float] = None
    shard: Optional[str] = None
    fit_args: list[str] = field(default_factory=list)


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} batch",
        description="Style every photo of --contents in every painting of --styles; any fit option (--config, --model.*, "
        "--data.image_size, --trainer.*) applies to every job.",
        exit_on_error=False,
    )
    what = p.add_argument_group("what to style")
    what.add_argument(
        "--contents", nargs="+", required=True, help="photos: files, a folder, a glob, a text file of paths/URLs, or \"[a.jpg, b.jpg]\""
    )
    what.add_argument("--styles", nargs="+", required=True, help="paintings, in any of the same forms (each is one style, not a blend)")
    what.add_argument("--out", required=True, help="the collection's folder: a run per job, summary.csv, contact_sheet.jpg")
    how = p.add_argument_group("how the jobs run")
    how.add_argument("--batch_size", default="1", help="optimise K jobs of the same size together as one [K, 3, H, W] image (Adam only)")
    how.add_argument("--launcher", default="sequential", help="sequential (this process, one job after another) or ray")
    how.add_argument("--ray_address", default=None, help="with --launcher ray: auto or HOST:PORT of a running cluster (default: a local one)")
    how.add_argument("--cpus_per_job", default=None, help="with --launcher ray on CPUs: cores per job (default: all of this machine's)")
    how.add_argument("--shard", default=None, help="I/N: run only the I-th (from 0) of N disjoint shares of the jobs; slurm: a job array's task")
    return p


def parse(argv: list[str], prog: str) -> BatchOptions:
    known, fit_args = split_command_line(
        parser(prog), argv, OWN_OPTIONS, "is set by batch for each job; give the inputs with --contents and --styles, and --out"
    )
    try:
        batch_size = int(known.batch_size)
    except ValueError:
        batch_size = 0
    if batch_size < 1:
        raise UserError(f"--batch_size {known.batch_size}: give a whole number of images per step, 1 or more")
    if known.launcher not in LAUNCHERS:
        raise UserError(f"--launcher {known.launcher}: choose one of {', '.join(LAUNCHERS)}")
    if known.ray_address is not None and known.launcher != "ray":
        raise UserError("--ray_address is for --launcher ray; add --launcher ray")
    cpus = None
    if known.cpus_per_job is not None:
        try:
            cpus = float(known.cpus_per_job)
        except ValueError:
            cpus = 0.0
        if not cpus > 0:
            raise UserError(f"--cpus_per_job {known.cpus_per_job}: give a positive number of cores")
    return BatchOptions(
        contents=known.contents, styles=known.styles, out=Path(known.out).expanduser().absolute(), batch_size=batch_size,
        launcher=known.launcher, ray_address=known.ray_address, cpus_per_job=cpus, shard=known.shard, fit_args=fit_args,
    )


def check_writable(out: Path) -> None:
    """``--out`` must be a folder this process (and, on a cluster, every node) can write: checked
    here, before any job, with a file written and removed."""
    probe = out / f".write-test-{uuid.uuid4().hex}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)  # created, but its bytes did not fit
        if err.errno in DISK_ERRNOS:  # a full disk: said as the other writes say it
            raise WriteFailed(err.errno, describe_write_failure(out, err, what=f"into --out {out}")) from None
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err}); give a folder you can write") from None


def run_batch(options: BatchOptions) -> int:
    contents = sources(options.contents, "--contents")
    styles = sources(options.styles, "--styles")
    jobs = plan_jobs(contents.images, styles.images)
    # The jobs' options, once, before anything is written (not even --out): a bad one is every job's.
    settings = check_fit_options(fit_arguments(jobs[:1], options.out, options.fit_args, resume=False))
    skipped = contents.skipped + styles.skipped
    if skipped:
        named = f"{', '.join(skipped[:5])}{'...' if len(skipped) > 5 else ''}"
        print(f"batch: left out {len(skipped)} file(s) not named as images: {named}", file=sys.stderr)
    check_writable(options.out)
    groups = group_jobs(jobs, options.batch_size, _size_reader(options, settings))
    if options.shard is not None:
        index, count = parse_shard(options.shard)
        groups = shard(groups, index, count)
    mine = [job for group in groups for job in group]

    def done(job: Job) -> bool:
        return is_done(options.out, job, settings.max_steps, settings.result_filename)

    todo = [group for group in groups if not all(done(job) for job in group)]
    done_before = len(mine) - sum(len(group) for group in todo)
    share = f" (share {options.shard})" if options.shard else ""
    into = f"{options.out}{_extended(options.out, mine, settings)}"
    print(f"batch: {len(mine)} jobs{share}, {done_before} already done, {len(todo)} run(s) to go, into {into}", file=sys.stderr)
    failed: dict[str, str] = {}
    busy: list[str] = []
    progress = Progress(len(mine), done_before)
    last_sheet = [0.0]

    def finished(records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["status"] == "failed":
                failed[record["job"]] = record.get("reason", "")
            elif record["status"] == "busy":
                busy.append(record["job"])
        label = records[0]["job"] if len(records) == 1 else f"{records[0]['job']} +{len(records) - 1}"
        progress.advance(len(records), f"{label} {records[0]['status']}")
        write_summary(options.out, jobs)
        if time.monotonic() - last_sheet[0] > SHEET_EVERY_S:
            write_contact_sheet(options.out, jobs, settings.result_filename)
            last_sheet[0] = time.monotonic()

    try:
        LAUNCHERS[options.launcher](
            todo, options.out, options.fit_args, finished, address=options.ray_address, cpus_per_job=options.cpus_per_job
        )
    except BaseException:
        progress.close()
        with contextlib.suppress(WriteFailed):  # the first failure is the one to report
            _write_reports(options.out, jobs, settings)
        raise
    progress.close()
    _write_reports(options.out, jobs, settings)
    for job, reason in failed.items():
        print(f"batch: {job} failed: {reason}", file=sys.stderr)
    if busy:
        named = f"{', '.join(busy[:3])}{'...' if len(busy) > 3 else ''}"
        print(f"batch: {len(busy)} job(s) are running in another process ({named}); rerun later to collect them", file=sys.stderr)
    ok = len(mine) - len(failed) - len(busy)
    print(f"batch: {ok} of {len(mine)} jobs done{share}; {options.out / 'summary.csv'}, {options.out / 'contact_sheet.jpg'}", file=sys.stderr)
    if failed:
        print(f"batch: {len(failed)} job(s) failed (listed above, reasons in summary.csv); fix them and rerun the same command", file=sys.stderr)
        return 1
    return 0


def _write_reports(out: Path, jobs: Sequence[Job], settings: FitSettings) -> None:
    write_summary(out, jobs)
    write_contact_sheet(out, jobs, settings.result_filename)


def _extended(out: Path, jobs: Sequence[Job], settings: FitSettings) -> str:
    """Finished jobs a larger ``--trainer.max_steps`` extends: said, as they run again."""
    fewer = [steps for steps in (finished_steps(out, job) for job in jobs) if steps is not None and steps < settings.max_steps]
    return f" ({len(fewer)} finished with fewer steps: resumed from their checkpoints to {settings.max_steps})" if fewer else ""


def _size_reader(options: BatchOptions, settings: FitSettings):
    """For grouping: each photo's result size at the run's ``image_size``, from its header (None if
    unreadable: that job runs alone and fails alone). Only read when grouping."""
    if options.batch_size == 1:
        return lambda job: None
    from nst_lightning.inputs.images import header_size
    from nst_lightning.inputs.sources import read_source

    cache: dict[str, Optional[tuple[int, int]]] = {}

    def size_of(job: Job) -> Optional[tuple[int, int]]:
        if job.content not in cache:
            try:
                cache[job.content] = header_size(read_source(job.content, "--contents"), settings.image_size, job.content, "--contents")
            except UserError:
                cache[job.content] = None
        return cache[job.content]

    return size_of


def batch_main(argv: list[str], prog: str) -> int:
    """The ``batch`` command: its exit code; every error is one line on stderr."""
    try:
        with sigterm_between_runs():  # between jobs: like Ctrl-C
            return run_batch(parse(argv, prog))
    except UsageError as err:
        print(f"nst_lightning: error: {err}", file=sys.stderr)
        return 2
    except WriteFailed as err:  # a full disk: the file, the space, and that a rerun goes on
        print(f"nst_lightning: error: {err}; {DISK_FULL_NEXT}", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"nst_lightning: error: {err.for_cli()}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # a job stopped by a signal: it saved what it could
        code = stop.code if isinstance(stop.code, int) else 1
        if code >= 128:
            print(f"batch: stopped by {signal.Signals(code - 128).name}; rerun the same command to go on", file=sys.stderr)
        return code
    except (KeyboardInterrupt, RunInterrupted) as err:
        signum = err.signum if isinstance(err, RunInterrupted) else signal.SIGINT
        print(f"batch: stopped by {signal.Signals(signum).name} between jobs; rerun the same command to go on", file=sys.stderr)
        return 128 + signum
