"""Nearest-neighbour style matching (NNST: Kolkin, Kucera, Paris, Sykora, Shechtman & Shakhnarovich,
"Neural Neighbor Style Transfer", 2022; its core as NNFM, Zhang et al., ECCV 2022): each position of
the result is pulled toward the painting's feature vector nearest to its own, by cosine after both are
centred on the painting's mean feature. The painting's texture is copied place by place instead of
being summarised in an average, so strokes keep their shape.

Given the matches, the loss is a sum of per-position terms with fixed targets: tiles are exact
(``scale/tiling.py``; the matches of a position depend on its own features only).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from nst_lightning.loss.functional import nearest_rows, unit_rows
from nst_lightning.loss.samples import Evaluation, SampleTargets, flat_weights, own_weights, positions, subsample


class NearestNeighbourStatistic(SampleTargets):
    """Per layer, the weighted mean over the result's positions of ``1 - cos(f - m, s - m)``, where
    ``s`` is the painting's feature vector nearest to ``f - m`` by cosine and ``m`` the painting's mean
    feature (NNST's centred cosine). Dimensionless, in [0, 2].

    Matches are found anew every ``refresh`` steps (1: at every evaluation, as NNFM; more: cheaper,
    each kept for the steps up to the next multiple of ``refresh``, and found anew at every
    coarse-to-fine stage, whose targets are new). A painting offers at most ``CANDIDATES`` feature
    vectors per layer (evenly spaced over it), which bounds a match's cost to ``N x CANDIDATES x C``.
    Blended paintings offer the union of their vectors, each in proportion to its weight; a region
    (``loss.guided``) matches inside its mask, against its paintings' vectors inside theirs.
    """

    CANDIDATES = 1 << 14  # a painting's conv3_1 at 512 x 512, whole

    # Measured (docs/lab/performance.md, "The style losses' memory"): 8-11.3 bytes per channel of a
    # position (its centred, normalised row and its match's), and 62-97 MB besides (the candidates, a
    # block of cosines).
    fixed_working_bytes = 150e6

    def __init__(self, refresh: int = 1) -> None:
        self.refresh = refresh

    def working_bytes(self, channels: int) -> float:
        return 12.0 * channels

    def blend(self, targets: Sequence[dict], blend_weights: Sequence[float]) -> dict:
        total = sum(blend_weights)
        pairs = [(t, w / total) for t, w in zip(targets, blend_weights) if w > 0 and t["features"].shape[0] > 0]
        budget = min(self.CANDIDATES, sum(t["features"].shape[0] for t, _ in pairs))
        chosen = [subsample(t, max(1, round(budget * w)))["features"] for t, w in pairs]
        mean = sum(w * (own_weights(t) @ t["features"]) for t, w in pairs)
        # "kept": the matches of the steps until the next refresh, per tile (filled by `_matches`).
        return {"candidates": unit_rows(torch.cat(chosen) - mean), "mean": mean, "kept": {}}

    def _positions(self, features: Tensor, weights: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
        """The positions that count (of positive weight) as ``[n, C]`` rows, with their weights."""
        rows, w = positions(features), flat_weights(weights)
        if w is None:
            return rows, None
        keep = w > 0
        return rows[keep], w[keep]

    def _matches(self, rows: Tensor, target: dict, evaluation: Evaluation) -> Tensor:
        kept = target["kept"].get(evaluation.part) if self.refresh > 1 else None
        if kept is not None and kept[0] // self.refresh == evaluation.step // self.refresh and kept[1].shape[0] == rows.shape[0]:
            return kept[1]
        index = nearest_rows(unit_rows(rows - target["mean"]), target["candidates"])
        if self.refresh > 1:
            target["kept"][evaluation.part] = (evaluation.step, index)
        return index

    def _distances(self, rows: Tensor, target: dict, index: Tensor) -> Tensor:
        return 1 - (unit_rows(rows - target["mean"]) * target["candidates"][index]).sum(dim=1)

    def loss(self, features: Tensor, target: dict, weights: Optional[Tensor] = None, evaluation: Evaluation = Evaluation()) -> Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            rows, w = self._positions(features, weights)
            with torch.no_grad():
                index = self._matches(rows.detach(), target, evaluation)
            distances = self._distances(rows, target, index)
            return distances.mean() if w is None else (distances * w).sum() / w.sum().clamp_min(1e-30)

    # ---- in tiles: each tile's matches and distances first, then its share of the loss -------------

    def part(self, features: Tensor, target: dict, weights: Optional[Tensor], evaluation: Evaluation) -> dict:
        with torch.autocast(device_type=features.device.type, enabled=False):
            rows, w = self._positions(features, weights)
            index = self._matches(rows, target, evaluation)
            distances = self._distances(rows, target, index)
            mass = float(rows.shape[0]) if w is None else w.sum()
            return {"index": index, "sum": distances.sum() if w is None else distances @ w, "mass": mass}

    def settle(self, parts: Sequence[dict], masses: Sequence[float], target: dict, evaluation: Evaluation) -> tuple[Tensor, list]:
        mass = sum(part["mass"] for part in parts)
        loss = sum(part["sum"] for part in parts) / mass
        return loss, [{"index": part["index"], "scale": 1.0 / mass} for part in parts]

    def surrogate(self, features: Tensor, target: dict, weights: Optional[Tensor], guide: dict, evaluation: Evaluation) -> Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            rows, w = self._positions(features, weights)
            distances = self._distances(rows, target, guide["index"])
            return (distances.sum() if w is None else distances @ w) * guide["scale"]
