"""The clip's style targets, written once by whichever frame needs them first."""

import torch

from nst_lightning.video.style_cache import CachedStyle


def test_two_shots_writing_the_clips_style_at_once_both_succeed(tmp_path, monkeypatch):
    # Parallel shots' first frames (Ray workers, seeded alike) may both measure the painting and write
    # it at once: here the other shot's whole write lands between this one's write and its rename.
    path, style = tmp_path / "style" / "64.pt", {"conv1_1": torch.ones(2, 2)}
    real_save = torch.save

    def save_then_the_other_shot(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        monkeypatch.setattr(torch, "save", real_save)
        torch.manual_seed(0)
        CachedStyle._save(path, style)

    monkeypatch.setattr(torch, "save", save_then_the_other_shot)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    CachedStyle._save(path, style)
    assert torch.equal(torch.get_rng_state(), state)  # a frame's noise does not depend on who wrote the cache
    assert torch.equal(torch.load(path, weights_only=True)["conv1_1"], style["conv1_1"])
    assert [p.name for p in path.parent.iterdir()] == ["64.pt"]
