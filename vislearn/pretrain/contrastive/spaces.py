"""A contrastive run's embedding spaces as frozen encoders for the linear probe (`vislearn pretrain probe --encoder
RUN@SPACE`): `backbone` (the pooled encoder feature, what `encoder.pth` gives), `all` (the general, all-invariant
space: MoCo's only one and LooC's "LooC"), one per augmentation LooC left out (`colour`, `rotation`, `texture`), and
`concat` (every space's normalised projection side by side: "LooC++")."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vislearn.common.errors import UserError

from .methods import GENERAL
from .train import load_learner

BACKBONE, CONCAT = "backbone", "concat"


class SpaceFeatures(nn.Module):
    def __init__(self, learner, space: str):
        super().__init__()
        self.learner, self.space = learner, space

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.learner.space_features(x)
        if self.space == CONCAT:
            return torch.cat([feats[s] for s in self.learner.heads], dim=1)
        return feats[self.space]


def space_encoder(spec: str) -> tuple[nn.Module, int, str]:
    """`RUN@SPACE` (RUN a run folder or its learner.pt) -> (frozen module, input size, name)."""
    run, space = spec.rsplit("@", 1)
    if not Path(run).exists():
        raise UserError(f"{run}: no such run folder or learner.pt")
    learner, cfg = load_learner(run)
    known = [BACKBONE, *learner.heads.keys(), CONCAT]
    if space not in known:
        raise UserError(f"{spec}: this {cfg.method} run has no space {space!r}; choose from {', '.join(known)}")
    name = {GENERAL: f"{cfg.method} (general space)", CONCAT: f"{cfg.method}++ (all spaces)"}.get(
        space, f"{cfg.method} ({space})")
    return SpaceFeatures(learner, space).eval(), cfg.img_size, name
