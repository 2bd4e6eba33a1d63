"""The ground floor (nst_lightning/utilities): how a message names an option, in Python and on the command line."""

from __future__ import annotations

import signal

from nst_lightning.utilities.errors import RunInterrupted, UserError, new_run_hint, param


def test_a_parameter_reads_as_python_in_str_and_as_an_option_for_the_cli():
    err = UserError(f"{param('model.lr')} is too large; lower {param('model.lr')} or {param('trainer.max_steps')}")
    assert str(err) == "lr is too large; lower lr or max_steps"
    assert err.for_cli() == "--model.lr is too large; lower --model.lr or --trainer.max_steps"
    assert UserError(new_run_hint("x.ckpt")).for_cli() == "or start a new run from its image with --model.init image --model.init_image x.ckpt"


def test_a_stop_by_a_signal_exits_with_128_plus_its_number():
    assert RunInterrupted(signal.SIGTERM, 3).exit_code == 143 and RunInterrupted(signal.SIGINT, None, saved=False).exit_code == 130
