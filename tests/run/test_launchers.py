"""The launchers' own rules, without a run (the batch and video tests run them for real)."""

import pytest

from nst_lightning.run.launchers import _ray_failure


def test_a_ray_tasks_failure_names_its_own_exception_not_the_task():
    # A RayTaskError's first line is the traceback's ("ray::_in_worker() (pid=..., ip=...)"): the line a
    # user gets named the task and hid what went wrong. Ray's public attribute `cause` carries the
    # task's exception (a frame's UserError, an OSError...); a worker that died has none.
    exceptions = pytest.importorskip("ray.exceptions")
    raised = exceptions.RayTaskError("_in_worker", "ray::_in_worker() (pid=7, ip=1.2.3.4)\nValueError: boom", ValueError("boom\nmore"))
    assert str(raised).splitlines()[0].startswith("ray::_in_worker()")
    assert _ray_failure(raised) == "ValueError: boom"
    assert _ray_failure(exceptions.WorkerCrashedError()).startswith("The worker died unexpectedly while executing this task")
