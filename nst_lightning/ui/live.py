"""What a run hands to the page while it paints: ``LivePreview``, a callback the page adds to each of
its runs (``--trainer.callbacks+=nst_lightning.ui.live.LivePreview --trainer.callbacks.channel ID``),
and the ``Channel`` it talks through.

The run and the page are in the same process but not the same thread (the page's handler reads, the
run's thread writes), so they meet in a registry of channels, keyed by an id the page picks: a
callback built by LightningCLI from its class path cannot be handed a queue any other way. Through a
channel go the run's progress (step, loss, the image every ``every_n_steps``) and one request back:
stop. A stop is the seam ``StepCheckpoint`` already handles for Ctrl-C: the callback raises
``RunInterrupted`` at the end of a step, so the checkpoint and the image of that step are saved
(``callbacks/checkpoint.py``), and ``cli_main`` ends with its one line. Signals cannot do it here: their
handlers are installed by the main thread only, and the page's runs are not in it.

A stop also reaches a session's runs that are still waiting in the queue: each request that will start
a run is noted when it joins the queue (``queued``), and when it leaves it (``starting``) it learns
whether its session asked to stop since it joined.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import lightning.pytorch as pl
from jsonargparse.typing import PositiveInt

from nst_lightning.utilities.errors import RunInterrupted


@dataclass
class Update:
    """One report of a run: where it is, and the image when it is a preview step."""

    step: int
    max_steps: int
    seconds: float  # since the run's first step
    loss: Optional[float] = None
    image: Any = None  # an ``[H, W, 3]`` uint8 numpy array (K images side by side), or None


@dataclass
class Channel:
    """The page's end: the updates to read, and the stop to set."""

    updates: "queue.Queue[Update]" = field(default_factory=queue.Queue)
    stop: threading.Event = field(default_factory=threading.Event)


_CHANNELS: dict[str, Channel] = {}
_LOCK = threading.Lock()


def open_channel(name: str) -> Channel:
    with _LOCK:
        _CHANNELS[name] = Channel()
        return _CHANNELS[name]


def close_channel(name: str) -> None:
    with _LOCK:
        _CHANNELS.pop(name, None)


def find_channel(name: str) -> Optional[Channel]:
    with _LOCK:
        return _CHANNELS.get(name)


_WAITING: dict[str, list[float]] = {}  # session -> when each of its queued requests joined, oldest first
_STOPPED: dict[str, float] = {}  # session -> when it last asked to stop while it had requests waiting
FORGET_S = 86400.0  # a session that waited this long without starting has gone (a closed page)


def queued(session: str) -> None:
    """A request of ``session`` that will start a run has joined the queue."""
    now = time.monotonic()
    with _LOCK:
        for gone in [s for s, times in _WAITING.items() if now - times[-1] > FORGET_S]:
            _WAITING.pop(gone)
            _STOPPED.pop(gone, None)
        _WAITING.setdefault(session, []).append(now)


def starting(session: str) -> bool:
    """A request of ``session`` leaves the queue to start its run: False when the session asked to stop
    while it waited (it must not run)."""
    with _LOCK:
        times = _WAITING.get(session)
        if not times:  # not noted (a request that joined before this server could note it)
            return True
        joined = times.pop(0)  # the queue keeps a session's requests in order
        stopped = _STOPPED.get(session, -1.0) >= joined
        if not times:
            _WAITING.pop(session)
            _STOPPED.pop(session, None)
        return not stopped


def stop(session: str) -> tuple[int, int]:
    """Ask the runs of ``session`` (channels named ``SESSION:ID``) to stop, and its requests still in the
    queue not to start; how many of each there were."""
    with _LOCK:
        channels = [channel for name, channel in _CHANNELS.items() if name.split(":", 1)[0] == session]
        waiting = len(_WAITING.get(session, ()))
        if waiting:
            _STOPPED[session] = time.monotonic()
    for channel in channels:
        channel.stop.set()
    return len(channels), waiting


def stop_all() -> int:
    """Ask every run to stop (the server is closing); how many are still open."""
    with _LOCK:
        channels = list(_CHANNELS.values())
    for channel in channels:
        channel.stop.set()
    return len(channels)


class LivePreview(pl.Callback):
    """Hands the run's step, loss and (every ``every_n_steps``, and at the first and last step) its image to
    the page's channel ``channel``; stops the run at a step boundary, with a checkpoint, when the page asks."""

    def __init__(self, channel: str = "", every_n_steps: PositiveInt = 5) -> None:
        """
        Args:
            channel: The page's name for this run (set by ``nst-lightning ui``; a run without a page ignores it).
            every_n_steps: Send the image this often; each one is a copy from the device and a PNG in the browser.
        """
        self.channel = channel
        self.every_n_steps = int(every_n_steps)
        self._started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.monotonic()
        self._send(trainer, pl_module, None, image=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        channel = find_channel(self.channel)
        if channel is None:
            return
        step, last = trainer.global_step, trainer.global_step >= (trainer.max_steps or 0)
        # Reading the loss and copying the image synchronise a GPU: only on preview steps.
        if step % self.every_n_steps == 0 or last or channel.stop.is_set():
            self._send(trainer, pl_module, outputs, image=True)
        else:
            self._send(trainer, pl_module, None, image=False)
        if channel.stop.is_set() and not last:
            # As StepCheckpoint does for Ctrl-C: its on_exception saves the checkpoint, SaveGeneratedImage the image.
            raise RunInterrupted(signal.SIGINT, step)

    def _send(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, image: bool) -> None:
        channel = find_channel(self.channel)
        if channel is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        value = float(loss) if loss is not None else None
        picture = as_array(pl_module.result()) if image else None
        seconds = time.monotonic() - self._started
        finite = value if value is None or math.isfinite(value) else None
        channel.updates.put(Update(trainer.global_step, int(trainer.max_steps or 0), seconds, finite, picture))


def as_array(image: Any) -> Any:
    """``[K, 3, H, W]`` in [0, 1] as one ``[H, K*W, 3]`` uint8 array."""
    import torch

    side_by_side = torch.cat(list(image.detach().float().cpu().unbind(0)), dim=-1)
    return (side_by_side.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
