"""A full disk (or a quota, a read-only or failing filesystem) while a run writes: one line saying what
could not be written, where, how much space it needed, and that the last good checkpoint is intact;
exit 2; no temporary file left."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nst_lightning.utilities import files
from nst_lightning.utilities.files import TMP_SUFFIX, WriteFailed, atomic_write
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, checkpoint


def temporaries(directory: Path) -> list[Path]:
    return [p for p in directory.rglob(f"*{TMP_SUFFIX}")]


class FullDisk:
    """Binary files opened with ``os.fdopen`` (``atomic_write``'s) fail with ``code`` once ``free``
    bytes have been written to them."""

    def __init__(self, monkeypatch, free: int, code: int = errno.ENOSPC) -> None:
        self.free, self.code = free, code
        real_fdopen = os.fdopen

        def fdopen(fd, mode="r", *args, **kwargs):
            if "b" not in mode:
                return real_fdopen(fd, mode, *args, **kwargs)
            return _Limited(io.FileIO(fd, "wb"), self)

        monkeypatch.setattr(files.os, "fdopen", fdopen)


class _Limited(io.BufferedWriter):
    def __init__(self, raw: io.FileIO, disk: FullDisk) -> None:
        super().__init__(raw)
        self.disk = disk

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self.disk.free:
            raise OSError(self.disk.code, os.strerror(self.disk.code))
        self.disk.free -= size
        return super().write(data)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO])
def test_atomic_write_reports_the_file_the_space_and_leaves_no_temporary(tmp_path, monkeypatch, code):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    FullDisk(monkeypatch, free=1000, code=code)
    with pytest.raises(WriteFailed) as err:
        atomic_write(target, lambda handle: [handle.write(b"x" * 600) for _ in range(3)], needed=1800)
    message = str(err.value)
    assert message.startswith(f"could not write {target}: {os.strerror(code)} (about 1.8 kB needed, ")
    assert "B free there" in message
    assert target.read_bytes() == b"old" and temporaries(tmp_path) == []


def test_a_checkpoint_that_does_not_fit_stops_the_run_in_one_line_naming_the_good_one(run_cli, run_dir, capsys, monkeypatch):
    run_cli("--trainer.max_steps", "2")  # a first run: last.ckpt at step 2
    good = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    FullDisk(monkeypatch, free=5000)  # room for the images, not for a checkpoint (~60 kB)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--trainer.max_steps", "4", "--ckpt_path", "last")
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nst_lightning")]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("nst_lightning: error: could not write ") and "No space left on device (about " in line
    assert f"the last good checkpoint, {os.path.join('lightning_logs', 'debug', 'checkpoints', 'last.ckpt')}, is intact" in line
    assert "continue with --ckpt_path last" in line
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == good and checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert temporaries(run_dir) == []


def _can_mount_tmpfs(path: Path) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_real_full_disk_mid_run(tmp_path):
    disk = tmp_path / "disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root to mount a 6 MB tmpfs")
    try:
        done = forked.run(
            ["fit", "--config", str(DEBUG_CONFIG), "--data.image_size", "256", "--trainer.max_steps", "40",
             "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(disk)],
            cwd=tmp_path, timeout=300,
        )
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("nst_lightning: error: could not write ") and "No space left on device" in line, line
        assert "is intact" in line or "no checkpoint had been written yet" in line
        assert temporaries(disk) == []
        last = disk / "debug" / "checkpoints" / "last.ckpt"
        if last.exists():
            checkpoint(last)  # whole and loadable
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_result_image_that_does_not_fit(run_cli, run_dir, capsys, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def no_space(self, fp, *args, **kwargs):
        if isinstance(fp, io.BytesIO):  # TensorBoard encoding a preview in memory
            return real_save(self, fp, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", no_space)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli()
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    result = os.path.join("lightning_logs", "debug", "generated.png")
    assert line.startswith(f"nst_lightning: error: could not write {result}: No space left on device")
    assert "the last good checkpoint" in line and "last.ckpt, is intact" in line
    assert not (run_dir / "generated.png").exists() and temporaries(run_dir) == []


# The writer thread's own exception must not surface either (pytest reports one as this warning).
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_event_file_that_does_not_fit(run_cli, run_dir, capsys, monkeypatch):
    # TensorBoard writes its events in a thread of its own, which hands the error to the next write.
    from tensorboard.summary.writer.record_writer import RecordWriter

    written = []
    real_write = RecordWriter.write

    def write(self, data):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(RecordWriter, "write", write)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--trainer.max_steps", "30")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err  # not even the writer thread's
    line = err.strip().splitlines()[-1]
    assert line.startswith("nst_lightning: error: could not write into ") and "(the TensorBoard event file): No space left on device" in line, line
    assert "is intact" in line or "no checkpoint had been written yet" in line
