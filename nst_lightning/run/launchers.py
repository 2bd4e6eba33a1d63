"""Where many in-process runs go: one after another in this process, or as Ray tasks; and which
share of them a process takes (``--shard I/N``, a SLURM array's task).

A launcher takes the units still to run (a batch's groups of jobs, a video's shots), each as the
arguments of one module-level ``task`` function, and calls ``finished(result)`` as each ends. The
task is the same whatever the launcher, so are its files; what a unit is belongs to its command
(``batch/launchers.py``, ``video/clip.py``). A task returns a ``UsageError``, a ``WriteFailed`` or a
stop's exit code as a value rather than raising it, so that Ray does not retry them; the launcher
raises them again here.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any, Callable, Literal, Optional, Sequence

from nst_lightning.run.fit_options import UsageError
from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import WriteFailed

Finished = Callable[[Any], None]
LauncherName = Literal["sequential", "ray"]
LAUNCHER_NAMES = ("sequential", "ray")
# A task whose worker process dies (killed, out of memory, a lost node) is run again this many
# times; each retry resumes from the unit's last checkpoint.
RAY_RETRIES = 3


def sequential(units: Sequence[tuple], task: Callable[..., Any], finished: Finished, **_: Any) -> None:
    """In this process, one unit after another: no worker pool. Ctrl-C stops the running fit at a
    step boundary with a checkpoint (as ``fit`` does), and then the command."""
    for arguments in units:
        finished(_reraise(call(task, *arguments)))


def ray(
    units: Sequence[tuple], task: Callable[..., Any], finished: Finished, address: Optional[str] = None,
    cpus_per_job: Optional[float] = None, **_: Any,
) -> None:
    """Each unit a Ray task, on a local Ray instance (``address`` None) or a running cluster
    (``auto`` or ``HOST:PORT``): one task per GPU where the cluster has GPUs, else tasks of
    ``cpus_per_job`` cores (default: all of this machine's, one at a time per machine of this
    size, which is how torch uses a CPU best). Ray retries a task whose worker died; the retry
    resumes from the unit's checkpoint, and the run lock of the dead worker is taken over."""
    try:
        import ray as ray_module
    except ImportError:
        raise UserError('--launcher ray needs Ray: pip install -e ".[ray]" (or pip install ray)') from None
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    try:
        # The workers' output goes to each run's log; the driver shows one progress bar.
        ray_module.init(address=address, log_to_driver=False, include_dashboard=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"--ray_address {address}" if address else "a local Ray instance"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not connect to {where}: {first}; start the cluster (ray start --head) or check the address") from None
    try:
        resources = ray_module.cluster_resources()
        if resources.get("GPU", 0) >= 1:
            options = {"num_gpus": 1, "num_cpus": 1}
        else:
            options = {"num_cpus": min(cpus_per_job or os.cpu_count() or 1, resources.get("CPU", 1))}
        remote = ray_module.remote(max_retries=RAY_RETRIES, retry_exceptions=False)(_in_worker).options(**options)
        pending = [remote.remote(task, os.getcwd(), *arguments) for arguments in units]
        while pending:
            ready, pending = ray_module.wait(pending, num_returns=1)
            for ref in ready:
                finished(_reraise(ray_module.get(ref)))
    except ray_module.exceptions.RayError as err:
        raise UserError(f"a Ray task failed for good after {RAY_RETRIES} retries: {_ray_failure(err)}; rerun the same command to go on") from None
    finally:
        ray_module.shutdown()


def _ray_failure(err: BaseException) -> str:
    """What went wrong in one line: the task's own exception where it raised one (a ``RayTaskError``'s
    first line only names the task and its process), else Ray's first line (a worker that died)."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        text = str(cause).strip()
        return f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def call(task: Callable[..., Any], *arguments: Any) -> Any:
    """``task(*arguments)``, with the errors Ray must not retry as values."""
    try:
        return task(*arguments)
    except (UsageError, WriteFailed) as err:
        return err
    except SystemExit as stop:
        return _Stopped(stop.code if isinstance(stop.code, int) else 1)


class _Stopped(int):
    """A task's stop by a signal (its exit code), returned rather than raised."""


def _reraise(outcome: Any) -> Any:
    if isinstance(outcome, (UsageError, WriteFailed)):
        raise outcome
    if isinstance(outcome, _Stopped):
        raise SystemExit(int(outcome))
    return outcome


def _in_worker(task: Callable[..., Any], cwd: str, *arguments: Any) -> Any:
    """A Ray task: ``task`` run where the command started (relative paths in its options mean what
    they meant there), with torch's threads as Ray gave the task cores."""
    import torch

    # Ray sets OMP_NUM_THREADS to the task's CPUs; torch's own thread count follows the cores.
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return call(task, *arguments)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray keeps retrying an address nobody answers at for minutes, logging as it goes: a
    connection is tried here first, so a wrong address is one line within seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray_address {address}: give auto or HOST:PORT (the head node's GCS port, 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise UserError(
            f"--ray_address {address}: no Ray cluster answers there ({err.strerror or err}); start one with ray start --head, "
            "or check the address"
        ) from None


def parse_shard(value: str, environ: Optional[dict[str, str]] = None) -> tuple[int, int]:
    """``I/N`` (0 <= I < N), or ``slurm``: a job array's task, ``SLURM_ARRAY_TASK_ID`` counted from
    ``SLURM_ARRAY_TASK_MIN`` (so ``--array=1-4`` and ``--array=0-3`` both work) of
    ``SLURM_ARRAY_TASK_COUNT``."""
    environ = os.environ if environ is None else environ
    if value == "slurm":
        try:
            task, first, count = (int(environ[k]) for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"))
        except (KeyError, ValueError):
            raise UserError(
                "--shard slurm: SLURM_ARRAY_TASK_ID, _MIN and _COUNT are not set; run it inside an sbatch --array job, or give --shard I/N"
            ) from None
        index, count = task - first, count
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        if not match:
            raise UserError(f"--shard {value}: give I/N (the I-th of N shares, counted from 0) or slurm")
        index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {value}: I must be in 0..N-1 and N at least 1 (here I={index}, N={count})")
    return index, count
