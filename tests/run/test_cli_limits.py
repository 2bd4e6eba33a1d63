"""Options and configs that Lightning or jsonargparse answered with a traceback, a hang or silence:
each is now one line naming the option and the fix, exit 2, before anything is written."""

from __future__ import annotations

import os
import subprocess
import warnings

import pytest

from nst_lightning.run._config_limits import MAX_YAML_NODES, count_nodes
from tests import _forked as forked
from tests.helpers import DEBUG_CONFIG, REPO, info_lines, user_error

# 499 bytes that expand to 490 million values: 17 s and 5 GB in jsonargparse before.
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi")
)
# The same four levels deep inside one option's value (9^4 = 6,561 values).
LAUGHS_INLINE = "{a: &a [x,x,x,x,x,x,x,x,x], " + ", ".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]" for previous, name in zip("abc", "bcd")
) + "}"


def write_configs(directory) -> None:
    (directory / "latin1.yaml").write_bytes("# café\nmodel:\n  lr: 0.1  # réglé\n".encode("latin-1"))
    (directory / "laughs.yaml").write_text(LAUGHS)
    (directory / "big.yaml").write_text("model:\n  style_layer_weights:\n" + "  - 1\n" * (16 * 2**20 // 6))  # 16 MB


def test_alias_expansion_is_counted_without_expanding():
    assert count_nodes(LAUGHS) == 490_329_064
    assert count_nodes(LAUGHS_INLINE) > MAX_YAML_NODES
    assert count_nodes("a: &x [1, 2]\nb: *x\n") == 1 + (1 + 3) + 1 + 3  # the mapping, a and its list, b and the alias
    assert count_nodes("not: [valid") == 0  # left to jsonargparse to report
    assert len(LAUGHS.encode()) < 500


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed_everything", "-1"],
         "--seed_everything must be an integer from 0 to 4294967295 (or true for a random seed, false for none), not -1"),
        (["--seed_everything", str(2**32)], "--seed_everything must be an integer from 0 to 4294967295"),
        (["--ckpt_path", "best"], "--ckpt_path best names the best checkpoint of an earlier fit in this same process"),
        (["--result.filename", ""], "--result.filename is empty; give a file name such as generated.png"),
        (["--result.filename", "."], "--result.filename . names a directory (lightning_logs/debug)"),
        (["--result.filename", "images/"], "--result.filename images/ names a directory"),
        (["--result.filename", "run.lock"], "--result.filename run.lock is a name the run uses itself (lightning_logs/debug/run.lock)"),
        (["--result.filename", "checkpoints"], "--result.filename checkpoints is a name the run uses itself"),
        # One config refused through the whole CLI; the others: test_configs_and_yaml_values_are_bounded_as_the_command_line_is_read.
        (["--config", "latin1.yaml"], "--config latin1.yaml is not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8"),
    ],
    ids=lambda value: " ".join(value)[:32] if isinstance(value, list) else "",
)
def test_options_lightning_would_fail_on_are_one_line_before_anything_is_written(run_cli, tmp_path, capsys, args, message):
    write_configs(tmp_path)
    assert message in user_error(run_cli, capsys, *args)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "laughs.yaml"], "--config laughs.yaml holds 490,329,064 values once its YAML aliases are expanded, more than the 5,000"),
        (["--config=big.yaml"], "--config big.yaml is 16.8 MB; a config file is at most 1 MB"),
        (["-c", "big.yaml"], "--config big.yaml is 16.8 MB"),
        (["--model", "laughs.yaml"], "--model laughs.yaml holds 490,329,064 values"),
        (["--config", LAUGHS], "--config a: &a"),  # a config given as YAML text
        (["--model.style_layers", LAUGHS_INLINE], "--model.style_layers {a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a... holds 8,307 values"),
    ],
    ids=lambda value: " ".join(value)[:32] if isinstance(value, list) else "",
)
def test_configs_and_yaml_values_are_bounded_as_the_command_line_is_read(parse_refusal, tmp_path, args, message):
    write_configs(tmp_path)
    assert message in parse_refusal(*args)


def test_a_directory_existing_under_the_result_name_is_refused_before_training(run_cli, tmp_path, capsys):
    (tmp_path / "lightning_logs" / "debug" / "result.png").mkdir(parents=True)
    line = user_error(run_cli, capsys, "--result.filename", "result.png")
    assert "--result.filename result.png names a directory (lightning_logs/debug/result.png)" in line
    assert sorted(p.name for p in (tmp_path / "lightning_logs" / "debug").iterdir()) == ["result.png"]


def fit(tmp_path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return forked.run(["fit", "--config", DEBUG_CONFIG, "--trainer.enable_progress_bar", "false", *args], cwd=tmp_path, env=env, timeout=timeout)


@pytest.mark.parametrize(
    "args, message",
    [
        # Opening a FIFO waits for a writer: the run hung before, forever.
        (["--ckpt_path", "waiting.fifo"], "nst_lightning: error: --ckpt_path: waiting.fifo is not a regular file (a FIFO); give a .ckpt file"),
        # Lightning started a second process that found the first one's lock: a confusing line, exit 137.
        (["--trainer.devices", "2"], "nst_lightning: error: --trainer.devices 2: a run optimises one image, a problem that does not split "
                                     "across devices (2 would each compute the same steps); give --trainer.devices 1"),
    ],
    ids=["fifo", "devices"],
)
@pytest.mark.slow
def test_a_hang_or_a_second_process_is_one_line_instead(tmp_path, args, message):
    os.mkfifo(tmp_path / "waiting.fifo")
    done = fit(tmp_path, *args, timeout=240)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["waiting.fifo"]


def test_ckpt_path_last_without_a_run_says_it_starts_a_new_one(run_cli, run_dir):
    with info_lines() as lines, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_cli("--ckpt_path", "last")
    said = "--ckpt_path last: no checkpoint in lightning_logs/debug/checkpoints yet, so this is a new run"
    assert [line for line in lines if "--ckpt_path last" in line] == [said]
    assert not [w for w in caught if "no last checkpoint" in str(w.message)]  # Lightning's own, replaced by the line
    assert (run_dir / "generated.png").exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
