"""Optical flow by torchvision's RAFT (Teed & Deng 2020), for users who have its weights
(``--video.flow raft --video.flow_weights PATH``): more accurate than DIS on large motion
(``docs/guide/video.md``), seconds a pair on a CPU. Nothing is downloaded: the weights are a file, a state
dict of ``raft_large`` or ``raft_small`` (e.g. torchvision's ``Raft_Large_Weights.C_T_SKHT_V2`` file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nst_lightning.utilities.errors import UserError


class RaftFlow:
    """``flow(a, b)``: the flow a -> b of two H x W x 3 uint8 frames, as ``flow.dis_flow`` gives it."""

    def __init__(self, weights: str, updates: int = 12) -> None:
        from torchvision.models.optical_flow import raft_large, raft_small

        path = Path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # missing, not a torch file
            raise UserError(f"--video.flow_weights {weights}: cannot read it ({type(err).__name__}); give a RAFT state dict file") from None
        for build in (raft_large, raft_small):
            model = build(weights=None)
            try:
                model.load_state_dict(state)
                break
            except (RuntimeError, TypeError, AttributeError):
                continue
        else:
            raise UserError(f"--video.flow_weights {weights}: not the weights of torchvision's raft_large or raft_small")
        # No hard-coded device: a GPU where there is one, as the frames' runs use it.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.updates = model.eval().to(self.device), updates

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        height, width = a.shape[:2]
        # RAFT takes inputs in [-1, 1] whose sides are multiples of 8 and at least 128 (its correlation
        # pyramid downsamples by 8 and then 16): padded by replication, the flow cropped back.
        pad = (0, max(128, width + -width % 8) - width, 0, max(128, height + -height % 8) - height)
        as_input = lambda f: F.pad(torch.from_numpy(np.array(f)).permute(2, 0, 1)[None].float().div(127.5).sub(1), pad, mode="replicate")  # noqa: E731
        flow = self.model(as_input(a).to(self.device), as_input(b).to(self.device), num_flow_updates=self.updates)[-1]
        return np.ascontiguousarray(flow[0, :, :height, :width].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
