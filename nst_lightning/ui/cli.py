"""``nst-lightning ui``: serve the page (``page.py``) that makes, watches, stops and continues runs.

    nst-lightning ui --config configs/quick.yaml [--host 127.0.0.1] [--port 7860] [--runs lightning_logs/ui]
                     [--auth USER:PASSWORD] [--max-size 2048] [--max-steps 2000] [--max-storage-gb 10]
                     [--model.* / --data.* / --trainer.* ...]

``--config`` and the ``--model.*``, ``--data.*``, ``--trainer.*`` options are every run's defaults,
checked once before the page is served (``run/fit_options.py``), so a wrong one is one line and exit 2,
not an error on every run. ``--max-size``, ``--max-steps`` bound what one request may ask for (one run
holds the page's only slot), ``--max-storage-gb`` what the runs folder may hold before no new run starts.
Nothing leaves the machine: Gradio's analytics are off, there is no share link, the fonts are Gradio's
own; the page is bound to 127.0.0.1 unless ``--host`` says otherwise. Gradio's upload folder is
``--runs``'s ``.gradio`` (unless ``GRADIO_TEMP_DIR`` says otherwise), so what the page stores is in one place.

Exit codes: 0 stopped by Ctrl-C or SIGTERM (a run in progress first stops at a step boundary, with its
checkpoint); 2 a wrong option, or Gradio not installed (the line says how to install it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.signals import sigterm_as_ctrl_c

INSTALL = 'pip install -e ".[ui]"'
PASSED = ("--model.", "--data.", "--trainer.", "--seed_everything", "--checkpoint.", "--image_logger.")
OWN = ("--trainer.logger", "--ckpt_path", "--result.filename")  # the server names each run's directory and files
LOCAL = ("127.0.0.1", "localhost", "::1")
MAX_UPLOAD = "64mb"  # per file, as a download's cap; what an image may decode to is the run's own check
# What one request may ask for. One run holds the page's only run slot, so these bound how long one visitor
# can keep everyone else waiting (the memory check refuses what does not fit this machine). 2048 px: the
# largest size docs/lab/performance.md measures (2.8 GB tiled on a CPU, 35 s a step; each doubling is 4x both);
# 2000 steps: 4x configs/default.yaml's 500, whose results are within 0.2% of their run's best (docs/lab/quality.md).
MAX_SIZE = 2048
MAX_STEPS = 2000
# 10 GB: four of the largest runs those limits allow (2000 steps at 2048x1536 keep 20 checkpoints of 113 MB:
# the image and Adam's two moments), or some 700 runs of configs/default.yaml (512 px, 500 steps: ~14 MB).
MAX_STORAGE_GB = 10.0
# Gradio keeps each session's copy of the page's state (~150 kB here) for this many sessions (its default,
# 10,000, is 1.5 GB of visitors long gone); the page keeps nothing of its own there.
SESSIONS = 100
STOP_WAIT_S = 120.0  # on Ctrl-C, how long a run may take to reach its step boundary and save


@dataclass
class UiOptions:
    config: list[str]
    host: str = "127.0.0.1"
    port: Optional[int] = None
    runs: Path = Path("lightning_logs/ui")
    auth: Optional[tuple[str, str]] = None
    fit_args: list[str] = field(default_factory=list)
    max_size: int = MAX_SIZE
    max_steps: int = MAX_STEPS
    max_storage_gb: float = MAX_STORAGE_GB


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} ui", exit_on_error=False,
        description="Serve a page for making, watching, stopping and continuing runs; any --model.*, --data.*, --trainer.* "
        "option sets the page's defaults.",
    )
    page = p.add_argument_group("the page")
    page.add_argument("--config", action="append", default=[], help="fit config(s) the page starts from, e.g. configs/quick.yaml")
    page.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    page.add_argument("--port", default=None, help="port (default: 7860, or the next free one)")
    page.add_argument("--runs", default="lightning_logs/ui", help="folder of the page's runs, one directory each")
    page.add_argument("--auth", default=None, help="USER:PASSWORD that the page asks for")
    limits = p.add_argument_group("limits that keep the machine serving everyone")
    limits.add_argument("--max-size", default=None, help=f"the largest image a request may ask for, px on its long side (default {MAX_SIZE})")
    limits.add_argument("--max-steps", default=None, help=f"the most steps a request may ask for (default {MAX_STEPS})")
    limits.add_argument("--max-storage-gb", default=None, help=f"no new run starts while --runs holds more (default {MAX_STORAGE_GB:g})")
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
    max_size = _positive("--max-size", known.max_size, MAX_SIZE, int)
    max_steps = _positive("--max-steps", known.max_steps, MAX_STEPS, int)
    max_storage = _positive("--max-storage-gb", known.max_storage_gb, MAX_STORAGE_GB, float)
    return UiOptions(known.config, known.host, port, Path(known.runs).expanduser().absolute(), auth, fit_args, max_size, max_steps, max_storage)


def _positive(name: str, given: Optional[str], default: Any, kind: type) -> Any:
    if given is None:
        return default
    try:
        value = kind(given)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise UserError(f"{name} {given}: give a {'whole ' if kind is int else ''}number above 0")
    return value


def ui_main(argv: list[str], prog: str) -> int:
    try:
        options = parse(argv, prog)
    except UserError as err:
        print(f"nst_lightning: error: {err.for_cli()}", file=sys.stderr)
        return 2
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no call home, ever
    try:
        import gradio
    except ImportError:
        print(f"nst_lightning: error: the ui command needs Gradio, the ui extra: {INSTALL}", file=sys.stderr)
        return 2
    from nst_lightning.run.fit_options import UsageError, check_fit_options
    from nst_lightning.ui.controls import Defaults, Limits
    from nst_lightning.ui.page import CSS, JS, build
    from nst_lightning.ui.pictures import install_builtins
    from nst_lightning.ui.runs import SERVED, Runs
    from nst_lightning.ui.speed import BENCH_SIDE, Speed

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
    defaults, limits = Defaults.from_config(settings.config), Limits(options.max_size, options.max_steps)
    try:
        limits.check(defaults.size, defaults.steps, defaults.style_scale)
    except UserError as err:
        print(f"nst_lightning: error: the page's defaults are over its limits: {err.for_cli()}", file=sys.stderr)
        return 2
    # Served: the runs' pictures (copies in SERVED) and nothing else of --runs: not in allowed_paths.
    served = options.runs / SERVED
    served.mkdir(parents=True, exist_ok=True)
    gradio.set_static_paths([served])
    uploads = Path(os.environ.setdefault("GRADIO_TEMP_DIR", str(options.runs / ".gradio")))
    runs, speed = Runs(options.runs, options.fit_args, options.max_storage_gb * 1e9, uploads), Speed()
    page = build(runs, defaults, limits, speed, install_builtins(served))
    page.queue(default_concurrency_limit=1)
    try:
        _, url, _ = page.launch(
            server_name=options.host, server_port=options.port, auth=options.auth, share=False, max_file_size=MAX_UPLOAD,
            prevent_thread_lock=True, quiet=True, ssr_mode=False, mcp_server=False, inbrowser=False, show_error=False,
            footer_links=["api"], state_session_capacity=SESSIONS, css=CSS, js=JS,
        )
    except OSError as err:  # the port is taken, or the address is not this machine's
        print(f"nst_lightning: error: cannot serve on {options.host}:{options.port or 'default'}: {err}", file=sys.stderr)
        return 2
    # This machine's speed, for the page's time estimates: a short run before any visitor's (speed.py).
    speed.measure_in_background(options.fit_args, options.runs, min(BENCH_SIDE, options.max_size))
    print(f"nst_lightning: serving {url} (runs in {options.runs}); Ctrl-C stops", file=sys.stderr, flush=True)
    return _serve(page)


def _serve(page: Any) -> int:
    """Until Ctrl-C or SIGTERM; then a run in progress stops at its step boundary and saves, and the server closes."""
    from nst_lightning.ui import live

    try:
        with sigterm_as_ctrl_c():
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        if live.stop_all():  # on the terminal: a run's output (sys.stderr now) goes to its ui.log
            print("nst_lightning: stopping the run at the end of its step, then saving…", file=sys.__stderr__, flush=True)
        deadline = time.monotonic() + STOP_WAIT_S
        while live.stop_all() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        page.close()
    return 0
