"""``nst-lightning ui``: serve the page (``page.py``) that makes, watches, stops and continues runs.

    nst-lightning ui --config configs/quick.yaml [--host 127.0.0.1] [--port 7860] [--runs lightning_logs/ui]
                     [--auth USER:PASSWORD] [--model.* / --data.* / --trainer.* ...]

``--config`` and the ``--model.*``, ``--data.*``, ``--trainer.*`` options are every run's defaults,
checked once before the page is served (``run/fit_options.py``), so a wrong one is one line and exit 2,
not an error on every run. Nothing leaves the machine: Gradio's analytics are off, there is no share
link, the fonts are Gradio's own; the page is bound to 127.0.0.1 unless ``--host`` says otherwise.

Exit codes: 0 stopped by Ctrl-C or SIGTERM (a run in progress first stops at a step boundary, with its
checkpoint); 2 a wrong option, or Gradio not installed (the line says how to install it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nst_lightning.utilities.errors import UserError

INSTALL = 'pip install -e ".[ui]"'
PASSED = ("--model.", "--data.", "--trainer.", "--seed_everything", "--checkpoint.", "--image_logger.")
OWN = ("--trainer.logger", "--ckpt_path", "--result.filename")  # the server names each run's directory and files
LOCAL = ("127.0.0.1", "localhost", "::1")
MAX_UPLOAD = "64mb"  # per file, as a download's cap; what an image may decode to is the run's own check
STOP_WAIT_S = 120.0  # on Ctrl-C, how long a run may take to reach its step boundary and save


@dataclass
class UiOptions:
    config: list[str]
    host: str = "127.0.0.1"
    port: Optional[int] = None
    runs: Path = Path("lightning_logs/ui")
    auth: Optional[tuple[str, str]] = None
    fit_args: list[str] = field(default_factory=list)


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} ui", exit_on_error=False,
        description="Serve a page for making, watching, stopping and continuing runs; any --model.*, --data.*, --trainer.* "
        "option sets the page's defaults.",
    )
    p.add_argument("--config", action="append", default=[], help="fit config(s) the page starts from, e.g. configs/quick.yaml")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", default=None, help="port (default: 7860, or the next free one)")
    p.add_argument("--runs", default="lightning_logs/ui", help="folder of the page's runs, one directory each")
    p.add_argument("--auth", default=None, help="USER:PASSWORD that the page asks for")
    return p


def parse(argv: list[str], prog: str) -> UiOptions:
    try:
        known, rest = parser(prog).parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(f"{err}; see {prog} ui --help") from None
    for arg in rest:
        name = arg.split("=", 1)[0]
        if name.startswith(OWN):
            raise UserError(f"{name} is set by the page for each run (its own directory under --runs)")
        if arg.startswith("--") and not name.startswith(PASSED):
            raise UserError(f"{name}: not an option of ui; see {prog} ui --help (--model.*, --data.*, --trainer.* set the page's defaults)")
    port = None
    if known.port is not None:
        if not known.port.isdigit() or not 0 < int(known.port) < 65536:
            raise UserError(f"--port {known.port}: give a port number from 1 to 65535")
        port = int(known.port)
    auth = None
    if known.auth is not None:
        user, colon, password = known.auth.partition(":")
        if not (user and colon and password):
            raise UserError("--auth: give USER:PASSWORD, both not empty")
        auth = (user, password)
    fit_args = [a for c in known.config for a in ("--config", c)] + rest
    return UiOptions(known.config, known.host, port, Path(known.runs).expanduser().absolute(), auth, fit_args)


def ui_main(argv: list[str], prog: str) -> int:
    try:
        options = parse(argv, prog)
    except UserError as err:
        print(f"nst_lightning: error: {err.for_cli()}", file=sys.stderr)
        return 2
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no call home, ever
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"nst_lightning: error: the ui command needs Gradio, the ui extra: {INSTALL}", file=sys.stderr)
        return 2
    from nst_lightning.run.fit_options import UsageError, check_fit_options
    from nst_lightning.ui.controls import Defaults
    from nst_lightning.ui.page import build
    from nst_lightning.ui.runs import Runs

    # Each run is cli_main(args) in this process, whose sys.argv holds the ui command's own options.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    try:
        settings = check_fit_options(["fit", *options.fit_args])
    except UsageError as err:
        print(f"nst_lightning: error: {err}", file=sys.stderr)
        return 2
    if options.host not in LOCAL and options.auth is None:
        print(f"nst_lightning: warning: --host {options.host} lets anyone who can reach this machine use the page and its runs; "
              "add --auth USER:PASSWORD", file=sys.stderr)
    page = build(Runs(options.runs, options.fit_args), Defaults.from_config(settings.config))
    page.queue(default_concurrency_limit=1)
    try:
        _, url, _ = page.launch(
            server_name=options.host, server_port=options.port, auth=options.auth, share=False, max_file_size=MAX_UPLOAD,
            allowed_paths=[str(options.runs)], prevent_thread_lock=True, quiet=True, ssr_mode=False, mcp_server=False,
            inbrowser=False, show_error=False, footer_links=["api"],
        )
    except OSError as err:  # the port is taken, or the address is not this machine's
        print(f"nst_lightning: error: cannot serve on {options.host}:{options.port or 'default'}: {err}", file=sys.stderr)
        return 2
    print(f"nst_lightning: serving {url} (runs in {options.runs}); Ctrl-C stops", file=sys.stderr, flush=True)
    return _serve(page)


def _serve(page: Any) -> int:
    """Until Ctrl-C or SIGTERM; then a run in progress stops at its step boundary and saves, and the server closes."""
    from nst_lightning.ui import live

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        if live.stop_all():  # on the terminal: a run's output (sys.stderr now) goes to its ui.log
            print("nst_lightning: stopping the run at the end of its step, then saving…", file=sys.__stderr__, flush=True)
        deadline = time.monotonic() + STOP_WAIT_S
        while live.stop_all() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        page.close()
    return 0
