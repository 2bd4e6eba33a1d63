"""``--precision_policy native_bf16``: bf16-mixed where the device computes bf16 natively, fp32 elsewhere,
an explicit ``--trainer.precision`` always winning; through the real CLI and in the saved config."""

from __future__ import annotations

import os

import pytest
import torch
import yaml

from nst_lightning.run.precision import cpu_flags, device_type, native_bf16, resolve_precision
from tests.helpers import info_lines, user_error

BF16_CPU = frozenset({"fpu", "avx512f", "avx512_bf16"})
PLAIN_CPU = frozenset({"fpu", "avx2", "avx512f"})  # AVX-512 without its bf16 instructions: emulated


def test_cpu_flags_are_read_from_the_kernels_list(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_flags(str(info)) == {"fpu", "sse2", "avx512f", "amx_bf16", "amx_tile"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()  # macOS, Windows: no such file, no guess


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo") or not hasattr(torch.cpu, "_is_avx512_bf16_supported"),
                    reason="a Linux CPU, and torch's own (private) check to compare with")
def test_the_flags_agree_with_torchs_own_check_on_this_machine():
    # torch has no public call for the CPU's bf16 support; its private one is what oneDNN goes by, so
    # this pins that the kernel's flags, which we read, say the same on the machine the tests run on.
    assert ("avx512_bf16" in cpu_flags()) == torch.cpu._is_avx512_bf16_supported()


@pytest.mark.parametrize(
    "policy, precision, accelerator, flags, expected",
    [
        ("native_bf16", None, "cpu", BF16_CPU, "bf16-mixed"),
        ("native_bf16", None, "cpu", frozenset({"amx_bf16"}), "bf16-mixed"),
        ("native_bf16", None, "cpu", PLAIN_CPU, None),  # the Trainer's fp32
        ("native_bf16", "32", "cpu", BF16_CPU, "32"),  # asked for: it wins
        ("native_bf16", "16-mixed", "cpu", PLAIN_CPU, "16-mixed"),
        ("as_set", None, "cpu", BF16_CPU, None),  # the default changes nothing
        ("as_set", "bf16-mixed", "cpu", PLAIN_CPU, "bf16-mixed"),
        ("native_bf16", None, "mps", BF16_CPU, None),  # not the CPU's flags: fp32 as set
    ],
)
def test_resolve_precision(policy, precision, accelerator, flags, expected):
    assert resolve_precision(policy, precision, accelerator, flags)[0] == expected


def test_the_line_says_what_was_chosen_and_why():
    assert resolve_precision("native_bf16", None, "cpu", BF16_CPU)[1] == "--precision_policy native_bf16: bf16-mixed (this CPU has avx512_bf16)"
    assert resolve_precision("native_bf16", None, "cpu", PLAIN_CPU)[1] == "--precision_policy native_bf16: 32 (no native bf16 on this CPU)"
    assert resolve_precision("native_bf16", "32", "cpu", BF16_CPU)[1] is None
    assert resolve_precision("as_set", None, "cpu", BF16_CPU)[1] is None


def test_device_type_follows_lightnings_names():
    assert device_type("cpu") == "cpu" and device_type("gpu") == "cuda" and device_type("cuda") == "cuda"
    expected = "mps" if torch.backends.mps.is_available() else "cuda" if torch.cuda.is_available() else "cpu"
    assert device_type("auto") == expected
    assert native_bf16("cuda") is None or torch.cuda.is_available()


def here() -> str:
    """What native_bf16 resolves to on this machine's CPU (both outcomes are tested above)."""
    return "bf16-mixed" if native_bf16("cpu") else "32-true"


def test_the_cli_runs_in_the_machines_precision_and_saves_what_ran(run_cli, run_dir):
    with info_lines() as lines:
        cli = run_cli("--precision_policy", "native_bf16", "--trainer.max_steps", "2", "--trainer.accelerator", "cpu")
    assert cli.trainer.precision == here() and cli.trainer.global_step == 2
    assert [line for line in lines if line.startswith("--precision_policy")][0].startswith(
        f"--precision_policy native_bf16: {here().replace('-true', '')} (")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["precision_policy"] == "native_bf16"
    # What ran, so the saved config reruns it as it ran (an explicit precision wins over the policy).
    assert saved["trainer"]["precision"] == (None if here() == "32-true" else "bf16-mixed")


def test_an_explicit_precision_wins_over_the_policy(run_cli):
    cli = run_cli("--precision_policy", "native_bf16", "--trainer.precision", "32", "--trainer.max_steps", "1")
    assert cli.trainer.precision == "32-true"


def test_an_unknown_policy_is_one_line_at_parse_time(run_cli, run_dir, capsys):
    line = user_error(run_cli, capsys, "--precision_policy", "fastest")
    assert "precision_policy" in line and "native_bf16" in line, line
    assert not run_dir.exists()
