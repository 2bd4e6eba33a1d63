"""``sync_every``: the loss read to the host every N steps, not every step (each read waits for the GPU).

On this CPU-only machine the reads are counted, not timed: ``Tensor.item``, ``__bool__``, ``tolist``,
``cpu``, ``__float__``, ``__int__`` and ``numpy`` are wrapped with counters (calling through) for a
window of training steps of a real CLI run. Reads of Adam's step counters are not counted: torch
keeps them on the host on every device (unless ``capturable``), so reading them waits for nothing.
"""

from __future__ import annotations

import pytest
import torch

from nst_lightning import StyleTransfer
from nst_lightning.scale.tiling import TiledLoss
from tests.helpers import events, pixels_sha, scalar_steps, user_error

READS = ("item", "__bool__", "tolist", "cpu", "__float__", "__int__", "numpy")
# Few writes of anything else: the logger writes at the last of 22 steps only (after the counted
# window), no periodic checkpoint, no image logged.
QUIET = ("--trainer.log_every_n_steps", "22", "--checkpoint.every_n_train_steps", "0", "--image_logger.every_n_steps", "1000")


class HostReads:
    """Counts host reads of tensors from the start of step ``first`` to the start of step ``last``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, first: int, last: int) -> None:
        self.first, self.last, self.count, self.active = first, last, 0, False
        self.host_side: set[int] = set()  # ids of Adam's step counters
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._counting(getattr(torch.Tensor, name)))

        def on_train_batch_start(module: StyleTransfer, batch, batch_idx: int) -> None:  # a method of the module
            self.step_started(module, batch_idx)

        monkeypatch.setattr(StyleTransfer, "on_train_batch_start", on_train_batch_start, raising=False)

    def _counting(self, read):
        def counted(tensor, *args, **kwargs):
            if self.active and id(tensor) not in self.host_side:
                self.count += 1
            return read(tensor, *args, **kwargs)

        return counted

    def step_started(self, module: StyleTransfer, batch_idx: int) -> None:
        if batch_idx == self.first:
            states = module.trainer.optimizers[0].state.values()
            self.host_side = {id(state["step"]) for state in states if "step" in state}
        self.active = self.first <= batch_idx < self.last

    @property
    def per_step(self) -> float:
        return self.count / (self.last - self.first)


@pytest.mark.slow
def test_sync_every_10_reads_the_host_a_tenth_as_often_and_changes_nothing_else(run_cli, run_dir, monkeypatch):
    with monkeypatch.context() as patch:
        every_step = HostReads(patch, first=1, last=21)
        run_cli("--trainer.max_steps", "22", *QUIET)
    with monkeypatch.context() as patch:
        every_10 = HostReads(patch, first=1, last=21)
        cli = run_cli("--trainer.max_steps", "22", *QUIET, "--model.sync_every", "10", "--trainer.logger.init_args.version", "every10")
    # Every step: the non-finite check and the progress bar's reading of train/loss (Lightning reads
    # every metric logged with prog_bar at every step); with 10, those reads once in 10 steps.
    assert every_step.per_step >= 2
    assert every_10.per_step <= every_step.per_step / 5, (every_10.count, every_step.count)
    print(f"host reads in 20 steps: {every_step.count} with sync_every 1, {every_10.count} with 10")
    # The same image, the same TensorBoard points; the bar shows the loss read at the end.
    assert pixels_sha(run_dir / "every10" / "generated.png") == pixels_sha(run_dir / "generated.png")
    assert scalar_steps(run_dir / "every10") == scalar_steps(run_dir) == [21]
    last_loss = events(run_dir / "every10").Scalars("train/loss")[-1].value
    assert cli.trainer.progress_bar_metrics["train/loss"] == pytest.approx(last_loss, rel=1e-6)


def test_the_logger_writes_each_steps_own_losses_on_its_steps(run_cli, run_dir):
    # Written on steps 2 and 5 (every 3rd of 7), whatever sync_every; each point's parts are its own
    # step's, so the total is content + 10 x style (before, the parts were those of the step before);
    # and with sync_every 4 the points are the very same.
    tags = ("loss", "content_loss", "style_loss")
    points = {}
    for sync_every in ("1", "4"):
        run_cli("--trainer.max_steps", "7", "--trainer.log_every_n_steps", "3", "--model.sync_every", sync_every,
                "--trainer.logger.init_args.version", f"sync{sync_every}")  # fmt: skip
        accumulator = events(run_dir / f"sync{sync_every}")
        points[sync_every] = {tag: [(e.step, e.value) for e in accumulator.Scalars(f"train/{tag}")] for tag in tags}
    assert points["4"] == points["1"]
    totals, contents, styles = (points["1"][tag] for tag in tags)
    assert [step for step, _ in totals] == [step for step, _ in contents] == [step for step, _ in styles] == [2, 5]
    for (_, total), (_, content), (_, style) in zip(totals, contents, styles):
        assert total == pytest.approx(content + 10 * style, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        ("--checkpoint.every_n_train_steps", "0"),  # read at step 10 only: 5 steps of NaN before it
        ("--model.tile_size", "32", "--data.image_size", "64"),  # a step backpropagates once per tile (4 here)
        ("--model.stage_steps", "[3]", "--model.ema_decay", "0.9"),  # the buffer changes size at step 3
    ],
    ids=["untiled", "tiled", "coarse-to-fine"],
)
def test_a_nan_with_sync_every_10_keeps_the_exact_last_finite_image_and_names_its_step(run_cli, run_dir, capsys, monkeypatch, options):
    forward = StyleTransfer.forward

    def nan_from_step_5(self, image=None):
        losses = forward(self, image)
        if self.trainer.global_step >= 5:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(StyleTransfer, "forward", nan_from_step_5)
    # Tiled, the loss is not ``forward``'s: each tile's surrogate is made NaN as it is backpropagated.
    losses_and_backward = TiledLoss.losses_and_backward

    def nan_tiles_from_step_5(self, image, content, style, backward, *args, **kwargs):
        if backward.__self__.trainer.global_step >= 5:
            return losses_and_backward(self, image, content, style, lambda value: backward(value * float("nan")), *args, **kwargs)
        return losses_and_backward(self, image, content, style, backward, *args, **kwargs)

    monkeypatch.setattr(TiledLoss, "losses_and_backward", nan_tiles_from_step_5)
    every_step = user_error(run_cli, capsys, "--trainer.max_steps", "12", *options)
    expected = pixels_sha(run_dir / "generated.png")
    every_10 = user_error(
        run_cli, capsys, "--trainer.max_steps", "12", *options, "--model.sync_every", "10", "--trainer.logger.init_args.version", "every10"
    )
    assert every_10 == every_step.replace("lightning_logs/debug/", "lightning_logs/debug/every10/")
    assert "the loss became nan after 5 steps" in every_10 and "the last image with a finite loss (after 4 steps)" in every_10
    assert pixels_sha(run_dir / "every10" / "generated.png") == expected
    # Nor is a diverged image shown in TensorBoard: the previews (every 2 steps) stop where they did.
    previews = [[image.step for image in events(path).Images("generated")] for path in (run_dir, run_dir / "every10")]
    assert previews[0] == previews[1]
