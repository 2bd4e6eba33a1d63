"""How long the development loop takes, and which of its tests belong in the slow tier.

    python benchmarks/tier_times.py                 # pytest -m "not slow" -n 2, timed
    python benchmarks/tier_times.py --marker slow   # the slow tier instead
    python benchmarks/tier_times.py --workers 0 --top 40 tests/run   # one folder, no xdist

Runs the tier with pytest (``-p no:cacheprovider``) with this file as a plugin that records each test's
CPU seconds (this process's and its finished children's: a test's real processes count) and wall seconds,
then prints the tier's count, its wall time, the machine's load before and after, the CPU seconds of its
tests, and its heaviest tests. CPU seconds hardly depend on what else runs on the machine, wall seconds do:
on a quiet machine a worker's wall time is about its CPU time (each worker runs one compute thread,
``tests/conftest.py``; this script gives every process one, ``--workers 0`` included), so the tier takes
about its CPU seconds divided by the workers. A test of
``--threshold`` CPU seconds or more (4: about 15 s on two shared cores) belongs in the slow tier
(``@pytest.mark.slow``; pyproject.toml says what it means). The results are in docs/lab/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = "TIER_TIMES_OUT"

# ---- the plugin (loaded in each pytest process, the workers' included) --------------------------------

_started: dict[str, tuple[float, float]] = {}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _started[nodeid] = (time.monotonic(), _cpu())


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    wall, cpu = _started.pop(nodeid, (time.monotonic(), _cpu()))
    if os.environ.get(OUT):
        with open(os.environ[OUT], "a") as out:
            out.write(f"{nodeid}\t{time.monotonic() - wall:.2f}\t{_cpu() - cpu:.2f}\n")


# ---- the script -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="test files or folders (default: all of tests/)")
    parser.add_argument("--marker", default="not slow", help='pytest -m EXPRESSION (default: "not slow", the development loop)')
    parser.add_argument("--workers", type=int, default=2, help="pytest -n N (0: no xdist)")
    parser.add_argument("--top", type=int, default=20, help="how many of the heaviest tests to list")
    parser.add_argument("--threshold", type=float, default=4.0, help="CPU seconds from which a test belongs in the slow tier")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".tsv", delete=False) as record:
        path = record.name
    env = dict(os.environ, **{OUT: path}, PYTHONPATH=os.pathsep.join([str(REPO / "benchmarks"), str(REPO), os.environ.get("PYTHONPATH", "")]))
    # One compute thread per process, as each worker of pytest -n has (tests/conftest.py): with more, idle
    # threads spinning on a busy machine would count as CPU seconds.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-p", "tier_times", "-m", args.marker, "-q", "-rfE", "-p", "no:cacheprovider"]
    command += (["-n", str(args.workers)] if args.workers else []) + args.paths
    load_before, start = os.getloadavg()[0], time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall, load_after = time.monotonic() - start, os.getloadavg()[0]
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "(no summary)")
    # Under xdist the controller records each test too, with the time of its report and no CPU: keep the larger.
    tests: dict[str, tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for line in Path(path).read_text().splitlines():
        nodeid, seconds, cpu = line.split("\t")
        tests[nodeid] = max(tests[nodeid], (float(cpu), float(seconds)))
    os.unlink(path)
    total_cpu = sum(cpu for cpu, _ in tests.values())
    print(f'pytest -m "{args.marker}" -n {args.workers}: {summary.strip("= ")}')
    for line in done.stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            print(line)
    print(f"wall {wall:.0f} s (load {load_before:.1f} before, {load_after:.1f} after, {os.cpu_count()} cores); "
          f"{len(tests)} tests, {total_cpu:.0f} CPU s in all, {total_cpu / max(args.workers, 1):.0f} s a worker")
    heavy = sorted(((cpu, wall, nodeid) for nodeid, (cpu, wall) in tests.items()), reverse=True)
    print(f"\nthe {args.top} heaviest (CPU s, wall s); {sum(1 for cpu, _, _ in heavy if cpu >= args.threshold)} at {args.threshold:g} CPU s or more:")
    for cpu, seconds, nodeid in heavy[: args.top]:
        print(f"{cpu:7.1f} {seconds:7.1f}  {nodeid}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
