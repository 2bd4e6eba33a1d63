"""The program as a process of its own, without its imports each time: ``nst_lightning(ARGS)`` and
``run(ARGS)`` start ``python -m nst_lightning ARGS`` forked from a parent that imported torch,
torchvision, Lightning and jsonargparse once. A real start spends 4.5-8 CPU seconds importing them
(most of what a refusal or a run of a few steps costs); a forked one starts in a few hundredths.

What the fork keeps of a real start: its own pid, which the test signals and kills, its exit status
(a code, or minus the signal that ended it), its own stdin, stdout and stderr, working directory,
environment, ``sys.argv`` and process group, and ``nst_lightning`` imported afresh and run as
``__main__`` as ``python -m`` runs it. What it does not: the interpreter's start and the third-party
imports, and their warnings. The tests of those run the real interpreter: the README's quick start,
``--help`` and the usage, a signal while starting, a run on a terminal (``tests/run/test_hangup.py``).

The parent (``_Zygote``, one per test process, started on first use) imports, then only forks and
reaps: it starts no thread and runs no torch operation, so a child starts as an interpreter would
after those imports (as a DataLoader's forked worker does). Requests and answers are datagrams on a
socket pair; the child's stdin, stdout and stderr go along with its request. The parent ends, and
ends its children, when the test process closes its end."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

_PRELOAD = ("torch", "torchvision", "lightning.pytorch", "lightning.pytorch.cli", "jsonargparse", "torch.utils.tensorboard", "PIL.Image")
_REPO = Path(__file__).resolve().parents[1]


# ---- the test's side -----------------------------------------------------------------------------


class _Zygote:
    """The forking parent and the thread that reads its answers (pids started, exit statuses)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen([sys.executable, __file__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL, cwd=_REPO)
        theirs.close()
        self._socket = ours
        self._lock = threading.Lock()  # one request at a time: each is answered with its pid, in order
        self._started: list[int] = []
        self._started_ready = threading.Condition()
        self._exits: dict[int, tuple[int, float]] = {}
        self._exited = threading.Condition()
        self._gone = False
        threading.Thread(target=self._read, name="forked-exits", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(4096)
            except OSError:
                data = b""
            if not data:  # the parent has gone: nothing more starts or ends
                with self._started_ready:
                    self._started.append(-1)
                    self._started_ready.notify_all()
                with self._exited:
                    self._gone = True
                    self._exited.notify_all()
                return
            message = json.loads(data)
            if "started" in message:
                with self._started_ready:
                    self._started.append(message["started"])
                    self._started_ready.notify_all()
            else:
                with self._exited:
                    self._exits[message["pid"]] = (message["code"], message["peak_rss_mb"])
                    self._exited.notify_all()

    def start(self, request: dict, fds: Sequence[int]) -> int:
        with self._lock:
            socket.send_fds(self._socket, [json.dumps(request).encode()], list(fds))
            with self._started_ready:
                self._started_ready.wait_for(lambda: self._started)
                pid = self._started.pop(0)
        if pid < 0:
            raise RuntimeError("the forking parent of tests/_forked.py has ended")
        return pid

    def ended(self, pid: int, timeout: Optional[float]) -> Optional[tuple[int, float]]:
        """``pid``'s exit code and peak resident memory (MB) once it has ended; None if it has not yet."""
        with self._exited:
            self._exited.wait_for(lambda: pid in self._exits or self._gone, timeout)
            if pid not in self._exits and self._gone:
                raise RuntimeError("the forking parent of tests/_forked.py has ended")
            return self._exits.get(pid)


_zygote: Optional[_Zygote] = None
_zygote_lock = threading.Lock()


def _the_zygote() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or _zygote._process.poll() is not None:
            _zygote = _Zygote()
        return _zygote


class Forked:
    """A started program, as much of ``subprocess.Popen`` as the tests use: ``pid``, ``args``,
    ``stdout``/``stderr`` (pipes when asked for), ``poll``, ``wait``, ``communicate``, ``send_signal``,
    ``terminate``, ``kill`` and ``returncode``; and, once it has ended, ``peak_rss_mb``, its own peak
    resident memory (``wait4``'s). ``sigint_ignored``: started with Ctrl-C ignored, as by a parent that
    ignores it (``preexec_fn`` cannot be sent to the forking parent)."""

    def __init__(self, args: list[str], cwd: Any = None, env: Optional[dict[str, str]] = None, stdin: Any = None,
                 stdout: Any = None, stderr: Any = None, text: bool = False, start_new_session: bool = False,
                 sigint_ignored: bool = False) -> None:
        self.args = [sys.executable, "-m", "nst_lightning", *args]
        self.returncode: Optional[int] = None
        self.peak_rss_mb: Optional[float] = None
        self.stdout = self.stderr = None
        if stdin == subprocess.PIPE:
            raise ValueError("no test writes to the program's stdin: give None, DEVNULL or a file")
        mine, theirs, ours_to_close = [], [], []  # pipe ends read here; the child's 0, 1, 2; fds opened here
        null = os.open(os.devnull, os.O_RDWR)
        ours_to_close.append(null)
        try:
            for fd, how in enumerate((stdin, stdout, stderr)):
                if how == subprocess.PIPE and fd > 0:
                    read, write = os.pipe()
                    mine.append((fd, read))
                    theirs.append(write)
                    ours_to_close.append(write)
                elif how == subprocess.STDOUT and fd == 2:
                    theirs.append(theirs[1])
                elif how == subprocess.DEVNULL:
                    theirs.append(null)
                elif how is None:  # inherited, as Popen's default
                    theirs.append(fd)
                else:
                    theirs.append(how if isinstance(how, int) else how.fileno())
            environment = dict(os.environ if env is None else env)
            request = {"argv": list(args), "cwd": str(Path(cwd or os.getcwd()).resolve()), "env": environment,
                       "new_session": start_new_session, "sigint_ignored": sigint_ignored}
            self._zygote = _the_zygote()
            self.pid = self._zygote.start(request, theirs)
        except BaseException:
            for _, read in mine:
                os.close(read)
            raise
        finally:
            for fd in ours_to_close:  # the child has its copies
                os.close(fd)
        for fd, read in mine:
            stream = open(read, "r" if text else "rb", encoding="utf-8" if text else None)
            setattr(self, "stdout" if fd == 1 else "stderr", stream)

    def poll(self) -> Optional[int]:
        return self._ended(0)

    def wait(self, timeout: Optional[float] = None) -> int:
        if self._ended(timeout) is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def _ended(self, timeout: Optional[float]) -> Optional[int]:
        if self.returncode is None:
            ended = self._zygote.ended(self.pid, timeout)
            if ended is not None:
                self.returncode, self.peak_rss_mb = ended
        return self.returncode

    def communicate(self, input: Any = None, timeout: Optional[float] = None) -> tuple[Any, Any]:
        assert input is None, "no test writes to the program's stdin"
        deadline = None if timeout is None else time.monotonic() + timeout
        outputs: dict[str, Any] = {}

        def read(name: str) -> None:
            stream = getattr(self, name)
            if stream is not None:
                outputs[name] = stream.read()
                stream.close()

        readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in ("stdout", "stderr")]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return outputs.get("stdout"), outputs.get("stderr")

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run(args: Sequence[str], cwd: Any = None, env: Optional[dict[str, str]] = None, timeout: Optional[float] = None,
        capture_output: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-m", "nst_lightning", *args], ...)``, forked: its output captured
    as text; killed (as subprocess.run does) when it outlives ``timeout``."""
    pipe = subprocess.PIPE if capture_output else None
    process = Forked(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, text=text)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def nst_lightning(args: Sequence[str], **popen: Any) -> Forked:
    """``subprocess.Popen([sys.executable, "-m", "nst_lightning", *args], **popen)``, forked."""
    return Forked(args, **popen)


# ---- the forking parent --------------------------------------------------------------------------


def _serve(channel: socket.socket) -> None:
    """Fork a child for each request; report each child's pid, then its exit. Ends with the test process
    (its end of the socket closed)."""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([channel], [], [], 0.05)
        if readable:
            try:
                data, fds, _, _ = socket.recv_fds(channel, 1 << 20, 3)
            except OSError:
                data = b""
            if not data:
                for pid in children:  # the test process has gone: so do its programs
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            request = json.loads(data)
            pid = os.fork()
            if pid == 0:
                channel.close()
                _become(request, fds)  # never returns
            for fd in fds:
                os.close(fd)
            children.add(pid)
            channel.send(json.dumps({"started": pid}).encode())
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            ended = {"pid": pid, "code": os.waitstatus_to_exitcode(status), "peak_rss_mb": usage.ru_maxrss / 1024}
            channel.send(json.dumps(ended).encode())


def _become(request: dict, fds: list[int]) -> None:
    """In the child: what ``python -m nst_lightning ARGS`` would be, started in ``cwd`` with ``env``."""
    import runpy
    import traceback
    import warnings

    code = 1
    try:
        if request["new_session"]:
            os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # As python -m: the working directory first, then $PYTHONPATH, then what the parent's start set.
        path = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:1] = [request["cwd"], *(os.path.abspath(p) for p in path)]
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN if request["sigint_ignored"] else signal.default_int_handler)
        # Python's buffering for these streams: stdout a line at a time on a terminal, stderr always.
        unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
        sys.stdout.reconfigure(line_buffering=sys.stdout.isatty(), write_through=unbuffered)
        sys.stderr.reconfigure(line_buffering=True, write_through=unbuffered)
        # A warning the imports gave in the parent is shown again, as in a fresh interpreter (the
        # registries of warnings shown are kept per filter version).
        filters = list(warnings.filters)
        warnings.resetwarnings()
        warnings.filters[:] = filters
        sys.argv = ["nst_lightning", *request["argv"]]
        runpy.run_module("nst_lightning", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if not isinstance(done.code, int) and done.code is not None:
            print(done.code, file=sys.stderr)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as Python ends on an uncaught Ctrl-C: by the signal
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    _serve(socket.socket(fileno=int(sys.argv[1])))
