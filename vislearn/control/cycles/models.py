"""The networks of the method and its losses, as plain functions of callables (so a test can hand them the true
maps of a toy system).

Every map works in the domains' raw units and learns in normalised ones: a fixed linear part from the joint
assignment (identity for equal robots) plus `std_out * MLP(normalised input)`, its last layer zero at the start. A
map therefore starts at the assignment, which is direct transfer, and learns a correction; with equal domains there
is nothing to correct. Image -> state is a CNN with no fixed part. Forward models predict the normalised change
of state; the official code's weighting of the losses (dynamics cycle L1 x20) is the default."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def mlp(inp: int, out: int, hidden: list[int], zero_last: bool = False) -> nn.Sequential:
    layers, d = [], inp
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    last = nn.Linear(d, out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Stats(nn.Module):
    """Mean and standard deviation of one domain's states (and of their one-step changes)."""

    def __init__(self, obs: Tensor, next_obs: Tensor):
        super().__init__()
        self.register_buffer("mean", obs.mean(0))
        self.register_buffer("std", obs.std(0).clamp_min(1e-3))
        delta = next_obs - obs
        self.register_buffer("delta_std", delta.std(0).clamp_min(1e-4))

    @classmethod
    def empty(cls, dim: int) -> "Stats":
        return cls(torch.zeros(2, dim), torch.zeros(2, dim))

    def norm(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def state_base(assignment: list[int], source_dim: int, target_dim: int) -> tuple[Tensor, Tensor]:
    """(source->target, target->source) matrices of a state assignment: target[assignment[i]] = source[i]."""
    to_target = torch.zeros(target_dim, source_dim)
    to_source = torch.zeros(source_dim, target_dim)
    for i, j in enumerate(assignment):
        to_target[j, i] = 1.0
        to_source[i, j] = 1.0
    return to_target, to_source


def action_base(assignment: list[int], source_dim: int, target_dim: int) -> tuple[Tensor, Tensor]:
    """(source->target, target->source) matrices of an action assignment: target[j] = source[assignment[j]]; back,
    a source action is the mean of the target actions it drives."""
    to_target = torch.zeros(target_dim, source_dim)
    for j, i in enumerate(assignment):
        to_target[j, i] = 1.0
    count = to_target.sum(0).clamp_min(1.0)
    return to_target, (to_target / count).t().contiguous()


class StateMap(nn.Module):
    """Raw state of one domain -> raw state of the other: base @ x + std_out * MLP(norm_in(x))."""

    def __init__(self, base: Tensor, stats_in: Stats, stats_out: Stats, hidden: list[int]):
        super().__init__()
        self.register_buffer("base", base)
        self.stats_in, self.stats_out = stats_in, stats_out
        self.net = mlp(base.shape[1], base.shape[0], hidden, zero_last=True)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.base.t() + self.stats_out.std * self.net(self.stats_in.norm(x))


class ImageToState(nn.Module):
    """uint8 frames [B, k, H, W] -> raw state: a small CNN (Nature-DQN layout, sized for 64 px)."""

    def __init__(self, frames: int, size: int, stats_out: Stats, hidden: int = 256):
        super().__init__()
        self.stats_out = stats_out
        self.conv = nn.Sequential(nn.Conv2d(frames, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                                  nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n = self.conv(torch.zeros(1, frames, size, size)).shape[1]
        self.head = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, stats_out.mean.numel()))

    def forward(self, frames: Tensor) -> Tensor:
        z = self.head(self.conv(frames.float() / 255.0))
        return self.stats_out.mean + self.stats_out.std * z


class ActionMap(nn.Module):
    """(raw state of the acting domain, action) -> action of the other: base @ a + MLP(norm(s), a), clipped to
    [-1, 1] (every gymnasium MuJoCo task's action range)."""

    def __init__(self, base: Tensor, stats_state: Stats, hidden: list[int]):
        super().__init__()
        self.register_buffer("base", base)
        self.stats_state = stats_state
        self.net = mlp(stats_state.mean.numel() + base.shape[1], base.shape[0], hidden, zero_last=True)

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        out = action @ self.base.t() + self.net(torch.cat([self.stats_state.norm(state), action], -1))
        return out.clamp(-1.0, 1.0)


class ForwardModel(nn.Module):
    """(raw state, action) -> raw next state: x + delta_std * MLP(norm(x), a)."""

    def __init__(self, stats: Stats, act_dim: int, hidden: list[int]):
        super().__init__()
        self.stats = stats
        self.net = mlp(stats.mean.numel() + act_dim, stats.mean.numel(), hidden)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        return x + self.stats.delta_std * self.net(torch.cat([self.stats.norm(x), a], -1))

    def loss(self, x: Tensor, a: Tensor, x_next: Tensor) -> Tensor:
        """L1 of the predicted change, each coordinate in units of its change's spread."""
        return ((self(x, a) - x_next) / self.stats.delta_std).abs().mean()


class Discriminator(nn.Module):
    """Normalised state -> one logit (least-squares GAN)."""

    def __init__(self, stats: Stats, hidden: list[int]):
        super().__init__()
        self.stats = stats
        self.net = mlp(stats.mean.numel(), 1, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.stats.norm(x)).squeeze(-1)


# ----------------------------------------------------------------------------- losses
Map = Callable[[Tensor], Tensor]
ActMap = Callable[[Tensor, Tensor], Tensor]
Dyn = Callable[[Tensor, Tensor], Tensor]


def dynamics_cycle_loss(state_map: Map, action_map: ActMap, target_forward: Dyn, x: Tensor, a: Tensor,
                        x_next: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """|T_y(F(x), G(x, a)) - F(x')|, L1, per coordinate in units of `scale` (the target's state spread): zero when
    F and G carry the source's transitions onto the target's dynamics."""
    y = state_map(x)
    return ((target_forward(y, action_map(x, a)) - state_map(x_next)) / scale).abs().mean()


def back_translation_loss(there: Map, back: Map, x: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """|H(F(x)) - x|, L1 in units of `scale`."""
    return ((back(there(x)) - x) / scale).abs().mean()


def gan_generator_loss(disc: nn.Module, fake: Tensor) -> Tensor:
    return ((disc(fake) - 1.0) ** 2).mean()


def gan_discriminator_loss(disc: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (((disc(real) - 1.0) ** 2).mean() + (disc(fake.detach()) ** 2).mean())


def l1(a: Tensor, b: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    return F.l1_loss(a / scale, b / scale)
