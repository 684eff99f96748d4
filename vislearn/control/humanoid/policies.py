"""The policies: the teacher (an MLP on the privileged state) and the students (a causal transformer, an LSTM or an
MLP, each on the same window of the last `history` observation-action tokens), the asymmetric critic, and the
observation normaliser they all share.

The student's window (`History`) is right-aligned: the newest token last, older slots zero with a 0 in the token's
`valid` channel, and cleared when an episode ends, so a new episode never sees the last one. Every student reads the
whole window; the transformer's causal mask keeps each position from attending to later ones, and its action comes
from the newest position (the paper's design: 4 blocks, width 192, 4 heads, MLP ratio 2, tokens embedded by an MLP
[512, 512], sinusoidal positions; 1.5M parameters for Walker2d's 23-number tokens)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

TEACHER_HIDDEN = (512, 512, 256, 128)
CRITIC_HIDDEN = (512, 512, 256, 128)
STUDENTS = ("transformer", "lstm", "mlp")


def mlp(sizes, act=nn.ELU, out_gain: float | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        lin = nn.Linear(sizes[k], sizes[k + 1])
        layers.append(lin)
        if k < len(sizes) - 2:
            layers.append(act())
        elif out_gain is not None:
            nn.init.orthogonal_(lin.weight, out_gain)
            nn.init.zeros_(lin.bias)
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Per-channel running mean and variance (parallel Welford), clipped standardisation; kept in the policy file."""

    def __init__(self, dim: int, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).double()
        n, mean, var = x.shape[0], x.mean(0), x.var(0, unbiased=False)
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + 1e-8)
        return z.clamp(-self.clip, self.clip)


class History:
    """The last `length` tokens of each environment, newest last, plus a `valid` channel; `push` appends the new
    observations and clears the rows of environments whose episode just started."""

    def __init__(self, n: int, length: int, obs_dim: int):
        self.buf = np.zeros((n, length, obs_dim + 1), dtype=np.float32)

    def reset(self, rows) -> None:
        self.buf[rows] = 0.0

    def push(self, obs: np.ndarray, new_episode: np.ndarray | None = None) -> np.ndarray:
        if new_episode is not None and np.any(new_episode):
            self.reset(np.asarray(new_episode, dtype=bool))
        self.buf[:, :-1] = self.buf[:, 1:].copy()
        self.buf[:, -1, :-1] = obs
        self.buf[:, -1, -1] = 1.0
        return self.buf


def sinusoidal(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


class TransformerStudent(nn.Module):
    def __init__(self, token_dim: int, n_act: int, history: int = 16, width: int = 192, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 2.0, embed: tuple = (512, 512)):
        super().__init__()
        self.embed = nn.Sequential(mlp((token_dim, *embed)), nn.ELU(), nn.Linear(embed[-1], width))
        self.register_buffer("pos", sinusoidal(history, width), persistent=False)
        layer = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_act)
        nn.init.orthogonal_(self.head.weight, 0.01)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("causal", torch.triu(torch.full((history, history), float("-inf")), 1), persistent=False)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every position's output [B, L, width]; position t sees tokens 0..t only."""
        L = tokens.shape[1]
        h = self.embed(tokens) + self.pos[-L:]
        return self.norm(self.blocks(h, mask=self.causal[:L, :L], is_causal=True))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens)[:, -1])


class LSTMStudent(nn.Module):
    """An LSTM run over the window each step (the same input as the transformer's, no state carried between calls)."""

    def __init__(self, token_dim: int, n_act: int, history: int = 16, hidden: int = 256, embed: tuple = (512,)):
        super().__init__()
        self.embed = nn.Sequential(mlp((token_dim, *embed)), nn.ELU())
        self.lstm = nn.LSTM(embed[-1], hidden, num_layers=2, batch_first=True)
        self.head = mlp((hidden, 128, n_act), out_gain=0.01)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


class MLPStudent(nn.Module):
    """An MLP on the flattened window (`history` = 1: on the newest token only)."""

    def __init__(self, token_dim: int, n_act: int, history: int = 16, hidden: tuple = TEACHER_HIDDEN):
        super().__init__()
        self.history = history
        self.net = mlp((token_dim * history, *hidden, n_act), out_gain=0.01)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens[:, -self.history:].reshape(tokens.shape[0], -1))


class Teacher(nn.Module):
    def __init__(self, priv_dim: int, n_act: int):
        super().__init__()
        self.net = mlp((priv_dim, *TEACHER_HIDDEN, n_act), out_gain=0.01)

    def forward(self, priv: torch.Tensor) -> torch.Tensor:
        return self.net(priv)


def build_actor(arch: str, obs_dim: int, priv_dim: int, n_act: int, history: int) -> nn.Module:
    token = obs_dim + 1
    if arch == "teacher":
        return Teacher(priv_dim, n_act)
    if arch == "transformer":
        return TransformerStudent(token, n_act, history)
    if arch == "lstm":
        return LSTMStudent(token, n_act, history)
    if arch == "mlp":
        return MLPStudent(token, n_act, history)
    raise ValueError(arch)


class Policy(nn.Module):
    """What a policy file holds and evaluation runs: normalisers, the actor (mean action) and its log-std."""

    def __init__(self, arch: str, obs_dim: int, priv_dim: int, n_act: int, history: int, init_std: float = 1.0):
        super().__init__()
        self.arch, self.history = arch, history
        self.obs_norm = RunningNorm(obs_dim)
        self.priv_norm = RunningNorm(priv_dim)
        self.actor = build_actor(arch, obs_dim, priv_dim, n_act, history)
        self.log_std = nn.Parameter(torch.full((n_act,), math.log(init_std)))

    @property
    def privileged(self) -> bool:
        return self.arch == "teacher"

    def normalise_window(self, window: torch.Tensor) -> torch.Tensor:
        """Normalise the observation channels of valid tokens; padded slots stay zero."""
        valid = window[..., -1:]
        return torch.cat([self.obs_norm(window[..., :-1]) * valid, valid], -1)

    def mean(self, window: torch.Tensor | None, priv: torch.Tensor | None) -> torch.Tensor:
        if self.privileged:
            return self.actor(self.priv_norm(priv))
        return self.actor(self.normalise_window(window))


class ActorCritic(nn.Module):
    """The policy and its critic; the critic always reads the privileged state (asymmetric for students)."""

    def __init__(self, policy: Policy, priv_dim: int):
        super().__init__()
        self.policy = policy
        self.critic = mlp((priv_dim, *CRITIC_HIDDEN, 1), out_gain=1.0)

    def value(self, priv: torch.Tensor) -> torch.Tensor:
        return self.critic(self.policy.priv_norm(priv)).squeeze(-1)

    def dist(self, window, priv) -> torch.distributions.Normal:
        mu = self.policy.mean(window, priv)
        return torch.distributions.Normal(mu, self.policy.log_std.exp().expand_as(mu))

    def forward(self, window, priv, actions):
        d = self.dist(window, priv)
        return d.log_prob(actions).sum(-1), d.entropy().sum(-1), self.value(priv), d.mean, d.stddev


def gaussian_kl(mu_s, std_s, mu_t, std_t) -> torch.Tensor:
    """KL(student || teacher) of diagonal Gaussians, summed over action dimensions."""
    return (torch.log(std_t / std_s) + (std_s ** 2 + (mu_s - mu_t) ** 2) / (2 * std_t ** 2) - 0.5).sum(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
