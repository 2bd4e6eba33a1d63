"""Where a batch's jobs run: one after another in this process, or as Ray tasks.

A launcher takes the groups still to run and calls ``finished(records)`` as each one ends (the
batch then updates its progress bar, ``summary.csv`` and the contact sheet). Each group runs
``jobs.run_group``: the same code, the same files, whatever the launcher. Adding a launcher is one
function here and one name in ``LAUNCHERS``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

from nst_lightning.batch.jobs import run_group
from nst_lightning.batch.plan import Job
from nst_lightning.run.fit_options import UsageError
from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import WriteFailed

Finished = Callable[[list[dict[str, Any]]], None]
LauncherName = Literal["sequential", "ray"]
# A task whose worker process dies (killed, out of memory, a lost node) is run again this many
# times; each retry resumes from the group's last checkpoint.
RAY_RETRIES = 3


def sequential(groups: Sequence[Sequence[Job]], out: Path, fit_args: Sequence[str], finished: Finished, **_: Any) -> None:
    """In this process, one group after another: no worker pool. Ctrl-C stops the running job at a
    step boundary with a checkpoint (as ``fit`` does) and then the batch."""
    for group in groups:
        finished(run_group(group, str(out), fit_args))


def ray(
    groups: Sequence[Sequence[Job]],
    out: Path,
    fit_args: Sequence[str],
    finished: Finished,
    address: Optional[str] = None,
    cpus_per_job: Optional[float] = None,
    **_: Any,
) -> None:
    """Each group a Ray task, on a local Ray instance (``address`` None) or a running cluster
    (``auto`` or ``HOST:PORT``): one task per GPU where the cluster has GPUs, else tasks of
    ``cpus_per_job`` cores (default: all of this machine's, one job at a time per machine of this
    size, which is how torch uses a CPU best). Ray retries a task whose worker died; the retry
    resumes from the group's checkpoint, and the run lock of the dead worker is taken over."""
    try:
        import ray as ray_module
    except ImportError:
        raise UserError('--launcher ray needs Ray: pip install -e ".[ray]" (or pip install ray)') from None
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    try:
        # The workers' output goes to each job's batch.log; the driver shows one progress bar.
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
        task = ray_module.remote(max_retries=RAY_RETRIES, retry_exceptions=False)(_ray_task).options(**options)
        pending = {task.remote(list(group), str(out), list(fit_args), os.getcwd()): group for group in groups}
        while pending:
            ready, _ = ray_module.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                outcome = ray_module.get(ref)
                if isinstance(outcome, (UsageError, WriteFailed)):
                    raise outcome
                if isinstance(outcome, int):  # the worker was stopped by a signal
                    raise SystemExit(outcome)
                finished(outcome)
    except ray_module.exceptions.RayError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"a Ray task failed for good after {RAY_RETRIES} retries: {message}; rerun the same command to go on") from None
    finally:
        ray_module.shutdown()


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


def _ray_task(group: list[Job], out: str, fit_args: list[str], cwd: str) -> Any:
    """A Ray task: the group's records; a batch-wide option error, a full disk or a stop by a signal
    as values (raised again by the driver), so that Ray does not retry them."""
    import torch

    # Ray sets OMP_NUM_THREADS to the task's CPUs; torch's own thread count follows the cores.
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    try:
        return run_group(group, out, fit_args, cwd=cwd)
    except (UsageError, WriteFailed) as err:
        return err
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


LAUNCHERS: dict[str, Callable[..., None]] = {"sequential": sequential, "ray": ray}
