"""MVP's policy: a frozen image feature projected to 128-d, beside a 128-d embedding of proprioception, into an MLP
[256, 128, 64] with SELU that outputs the action (ir413/mvp `PixelActor`: linear projector and state encoder,
orthogonal initialisation with gain sqrt(2), 0.01 on the output layer).

The policy works on features, so the same module trains on cached features (frozen encoders), on an end-to-end
encoder's output (`scratch:`), and on the full state (the oracle: its "feature" is the state vector)."""
from __future__ import annotations

import math

import torch
from torch import nn

EMB_DIM = 128
HIDDEN = (256, 128, 64)


def mlp(sizes: tuple[int, ...], out_gain: float = 0.01) -> nn.Sequential:
    """Linear layers with SELU between, initialised as MVP's (orthogonal, sqrt(2); `out_gain` on the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, gain=out_gain if last else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.SELU())
    return nn.Sequential(*layers)


class MVPPolicy(nn.Module):
    """(features [B, F], proprio [B, P]) -> actions [B, A]."""

    def __init__(self, feature_dim: int, proprio_dim: int, action_dim: int, emb_dim: int = EMB_DIM,
                 hidden: tuple[int, ...] = HIDDEN):
        super().__init__()
        self.feature_dim, self.proprio_dim, self.action_dim = feature_dim, proprio_dim, action_dim
        self.image_proj = nn.Linear(feature_dim, emb_dim)
        self.proprio_enc = nn.Linear(proprio_dim, emb_dim)
        self.actor = mlp((2 * emb_dim, *hidden, action_dim))

    def embed(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_proj(features), self.proprio_enc(proprio)], dim=-1)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        return self.actor(self.embed(features, proprio))
