"""Running one job (or one ``--batch_size`` group of jobs) of a ``batch``: the unit every launcher runs.

A job is an ordinary ``fit`` with the batch's options, run in-process through ``cli_main``, so it
has everything a single run has: the input checks, the run lock, checkpoints, resume checks, the
one-line errors. What a job leaves in ``out/<job>/``:

- ``job.json``: its record (``status`` done, failed or stopped; its photo and painting in full,
  ``steps``, ``seconds``, final losses, the result's path, the one-line reason of a failure), written
  atomically at the end of every attempt. ``done``, with as many steps as the batch asks for and the
  result file there, is what makes a rerun skip the job (``is_done``).
- ``generated.png`` (or ``--result.filename``), ``checkpoints/last.ckpt``, the TensorBoard events,
  ``config.yaml``: as ``fit`` writes them; a rerun of a started job, or of a finished one with a
  larger ``--trainer.max_steps``, resumes from ``last.ckpt`` (``--ckpt_path last``), with its
  optimizer state.
- ``batch.log``: the run's own output (Lightning's lines, warnings, the error line).

A group of K jobs is one ``fit`` of K photos (``--data.content`` and ``--data.style`` as lists of K
pairs, one ``[K, 3, H, W]`` image parameter) in ``out/groups/<name>/``: the group's checkpoints,
events and config are there, and each job's directory gets its ``generated.png`` and ``job.json``
when the group ends. A group is resumed as a whole, from its own ``last.ckpt``.

A full disk ends the batch, not just the job (every later job would fail the same way): a file the
batch could not write, or a job's run that could not, is a ``WriteFailed`` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from nst_lightning.batch.plan import Job
from nst_lightning.callbacks.result import SaveGeneratedImage, find_callback
from nst_lightning.run.capture import output_to
from nst_lightning.run.fit_options import UsageError
from nst_lightning.utilities.files import DISK_ERRNOS, WriteFailed, atomic_write, describe_write_failure

RECORD = "job.json"
RESULT = "generated.png"
LOG = "batch.log"
GROUPS = "groups"
ERROR_PREFIX = "nst_lightning: error: "
BUSY = "is in use by another run"  # run_lock's refusal: the job is running in another process


def group_name(group: Sequence[Job]) -> str:
    """A group's run directory name: stable for the same members."""
    digest = hashlib.sha1("\n".join(job.name for job in group).encode()).hexdigest()[:10]
    return f"{group[0].name}+{len(group) - 1}-{digest}"


def run_directory(group: Sequence[Job], out: Path) -> Path:
    return out / group[0].name if len(group) == 1 else out / GROUPS / group_name(group)


def read_record(out: Path, job: Job) -> Optional[dict[str, Any]]:
    try:
        return json.loads((out / job.name / RECORD).read_text())
    except (OSError, ValueError):
        return None


def finished_steps(out: Path, job: Job) -> Optional[int]:
    """The steps of this job's finished run (None: not finished); a record of another photo or
    painting (a directory of another job, from a version that named jobs ambiguously) is not it."""
    record = read_record(out, job)
    if record is None or record.get("status") != "done" or (record.get("content"), record.get("style")) != (job.content, job.style):
        return None
    steps = record.get("steps")
    return steps if isinstance(steps, int) else 0


def is_done(out: Path, job: Job, max_steps: int = 0, result: str = RESULT) -> bool:
    """Finished with at least ``max_steps`` steps, its ``result`` file there. One finished with fewer
    (a rerun with a larger ``--trainer.max_steps``) is not: it resumes from its checkpoint to them."""
    steps = finished_steps(out, job)
    return steps is not None and steps >= max_steps and (out / job.name / result).is_file()


def fit_arguments(group: Sequence[Job], out: Path, fit_args: Sequence[str], resume: bool = True) -> list[str]:
    """The ``fit`` command line of a job or group: the batch's options, then the inputs and the run
    directory, then ``--ckpt_path last`` if it was started before (and ``resume``)."""
    directory = run_directory(group, out)
    if len(group) == 1:
        inputs = ["--data.content", group[0].content, "--data.style", group[0].style]
    else:  # JSON is YAML: paths with commas or spaces survive
        inputs = ["--data.content", json.dumps([j.content for j in group]), "--data.style", json.dumps([j.style for j in group])]
    # A job's progress bar would only fill its log: the batch shows one bar over the jobs.
    quiet = [] if any(a.startswith("--trainer.enable_progress_bar") for a in fit_args) else ["--trainer.enable_progress_bar", "false"]
    args = ["fit", *quiet, *fit_args, *inputs]
    args += ["--trainer.logger.init_args.save_dir", str(directory.parent), "--trainer.logger.init_args.name", ""]
    args += ["--trainer.logger.init_args.version", directory.name]
    if resume and (directory / "checkpoints" / "last.ckpt").is_file():
        args += ["--ckpt_path", "last"]
    return args


def run_group(group: Sequence[Job], out: str, fit_args: Sequence[str], cwd: Optional[str] = None) -> list[dict[str, Any]]:
    """Run (or resume) one job or group to the end, write each job's record, and return them.
    Raises ``UsageError`` for an option error, ``SystemExit(128 + N)`` when stopped by a signal,
    ``WriteFailed`` when the disk is full (for a record, or for the run itself)."""
    from nst_lightning.run.entry import cli_main  # here: a Ray worker imports this module cheaply

    if cwd is not None and os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths in the options mean what they meant where the batch started
    out_path = Path(out)
    directory = run_directory(group, out_path)
    _make_directory(directory)
    previous = [read_record(out_path, job) or {} for job in group]
    earlier_seconds = max((r.get("seconds", 0.0) for r in previous), default=0.0)
    start_step = _checkpoint_step(directory / "checkpoints" / "last.ckpt")
    args = fit_arguments(group, out_path, fit_args)
    started = time.monotonic()
    log = io.StringIO()
    cli, code = None, 0
    with output_to(directory / LOG, log):
        try:
            cli = cli_main(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as err:  # a bug, not the input: recorded (traceback in the log), the batch goes on
            traceback.print_exc()
            print(f"{ERROR_PREFIX}unexpected {type(err).__name__}: {err} (traceback in {directory / LOG})")
            code = 2
    seconds = earlier_seconds + time.monotonic() - started
    reason = _error_line(log.getvalue())
    if code == 2 and reason.endswith("fit --help"):
        raise UsageError(reason.removeprefix(ERROR_PREFIX))
    common = {"seconds": round(seconds, 2), "resumed_from_step": start_step, "run": str(directory)}
    if len(group) > 1:
        common["group"] = group_name(group)
    if code == 2 and BUSY in reason:  # another process runs it (a twin batch): its record is that one's to write
        reason = reason.removeprefix(ERROR_PREFIX)
        return [{"job": job.name, "content": job.content, "style": job.style, "status": "busy", "reason": reason} for job in group]
    if code == 0 and cli is not None:
        records = [_done(cli, k, job, out_path, start_step, previous[k]) | common for k, job in enumerate(group)]
    elif code == 2:
        records = [{"status": "failed", "reason": reason.removeprefix(ERROR_PREFIX) or f"exit code {code}"} | common for _ in group]
    else:
        steps = _checkpoint_step(directory / "checkpoints" / "last.ckpt")
        records = [{"status": "stopped", "steps": steps, "reason": _stopped_line(log.getvalue()), "exit_code": code} | common for _ in group]
    records = [{"job": job.name, "content": job.content, "style": job.style} | record for job, record in zip(group, records)]
    full = disk_failure(reason.removeprefix(ERROR_PREFIX)) if code == 2 else None
    for job, record in zip(group, records):
        try:
            _write_record(out_path, job, record)
        except WriteFailed:
            if full is None:
                raise
            # else the run's own failure, the first, is the one to say
    if full is not None:  # the next jobs would fail the same way: the batch stops here
        raise WriteFailed(full.errno, f"{'job ' if len(group) == 1 else 'jobs '}{', '.join(job.name for job in group)}: {full}")
    if code not in (0, 2):
        raise SystemExit(code)
    return records


def disk_failure(reason: str) -> Optional[WriteFailed]:
    """The full disk (quota, read-only or failing file system) in a run's one-line error, if that is
    why it failed: the clause ``utilities.files.describe_write_failure`` wrote, without what the run
    said to do next (a batch goes on by being rerun)."""
    reasons = {os.strerror(code): code for code in DISK_ERRNOS}
    why = "|".join(map(re.escape, reasons))
    match = re.match(rf"could not write .*?: (?P<why>{why}) \([^()]*(?:free there|free space unknown)\)", reason)
    return None if match is None else WriteFailed(reasons[match["why"]], match[0])


def _done(cli: Any, k: int, job: Job, out: Path, start_step: int, previous: dict[str, Any]) -> dict[str, Any]:
    """A finished job's record, naming the result file the run wrote (``--result.filename``); a
    group member's result is copied into its own directory."""
    saved = find_callback(cli.trainer, SaveGeneratedImage)
    written = saved.paths if saved is not None else []
    filename = saved.filename if saved is not None else RESULT
    result = out / job.name / filename
    if len(written) > 1:
        source = written[k]
        atomic_write(result, lambda handle: handle.write(source.read_bytes()))
    steps = int(cli.trainer.global_step)
    if steps <= start_step and previous.get("steps") == steps:  # resumed at its end (to write the result): nothing new
        losses = {name: previous.get(name) for name in ("loss", "content_loss", "style_loss")}
    else:
        metrics = cli.trainer.callback_metrics
        prefix = "train/" if len(written) <= 1 else f"train/image_{k}/"
        losses = {name: _number(metrics.get(prefix + name)) for name in ("loss", "content_loss", "style_loss")}
    return {"status": "done", "steps": steps, **losses, "path": str(result)}


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


def _write_record(out: Path, job: Job, record: dict[str, Any]) -> None:
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = json.dumps(record, indent=1).encode()
    atomic_write(out / job.name / RECORD, lambda handle: handle.write(text))


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in DISK_ERRNOS:
            raise WriteFailed(err.errno, describe_write_failure(directory, err)) from None
        raise


def _checkpoint_step(path: Path) -> int:
    """The step a resume starts from (0: a fresh start), read without loading the tensors."""
    if not path.is_file():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except Exception:  # a damaged file: the run itself says so, in one line
        return 0


def _error_line(output: str) -> str:
    return _last_line(output, ERROR_PREFIX) or ""


def _stopped_line(output: str) -> str:
    line = _last_line(output, "nst_lightning: stopped")
    return line.removeprefix("nst_lightning: ") if line else "stopped"


def _last_line(output: str, prefix: str) -> Optional[str]:
    """The last line from ``prefix`` on (a progress bar may share its line, without a newline)."""
    found = [line[line.index(prefix) :] for line in output.splitlines() if prefix in line]
    return found[-1] if found else None
