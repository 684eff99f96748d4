"""Unpaired transitions of one domain under uniform random actions, and batches of them.

Each domain's data comes from its own episodes and seeds: nothing pairs a source state with a target state, and
the two sets need not have the same size or timestamps. A file (`RUN/data/<side>.npz`) holds `obs`, `act`,
`next_obs`, `term` for state domains. An image domain stores each step's grey frame once (`frames`) and, per
transition, the frame index of its observation and next observation and of its episode's first frame, so a stack
of the last k frames is rebuilt on demand (a stacked copy per step would be k times the size). `states` (the true
state of each observation) is written for image domains and read only by the held-out state-estimation error."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path

from .domains import Domain, make_env

SEED_STRIDE = 1_000_000  # episode seeds: collect seed * stride + 2 * episode (+1 for the target): never evaluation's


def collect(domain: Domain, xml: str, steps: int, episode_steps: int, seed: int, progress=None) -> dict:
    """`steps` transitions of uniform random actions in `domain`, episodes of at most `episode_steps`."""
    env = make_env(domain, xml)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    image = domain.observation == "image"
    obs_l, act_l, nxt_l, term_l, states = [], [], [], [], []
    frames, obs_idx, nxt_idx, first_idx = [], [], [], []
    episode, n = 0, 0
    try:
        while n < steps:
            obs, info = env.reset(seed=seed * SEED_STRIDE + episode)
            episode += 1
            if image:
                first = len(frames)
                frames.append(obs[-1])
            for _ in range(episode_steps):
                a = rng.uniform(low, high).astype(np.float32)
                nxt, _, term, trunc, info2 = env.step(a)
                if image:
                    frames.append(nxt[-1])
                    obs_idx.append(len(frames) - 2)
                    nxt_idx.append(len(frames) - 1)
                    first_idx.append(first)
                    states.append(info["state"])
                    info = info2
                else:
                    obs_l.append(obs)
                    nxt_l.append(nxt)
                act_l.append(a)
                term_l.append(term)
                obs = nxt
                n += 1
                if progress is not None:
                    progress(1)
                if term or trunc or n >= steps:
                    break
    finally:
        env.close()
    out = {"act": np.asarray(act_l, np.float32), "term": np.asarray(term_l, bool),
           "episodes": np.int64(episode), "seed": np.int64(seed)}
    if image:
        out.update(frames=np.asarray(frames, np.uint8), obs_idx=np.asarray(obs_idx, np.int64),
                   next_idx=np.asarray(nxt_idx, np.int64), first_idx=np.asarray(first_idx, np.int64),
                   states=np.asarray(states, np.float32), stack=np.int64(domain.frames))
    else:
        out.update(obs=np.asarray(obs_l, np.float32), next_obs=np.asarray(nxt_l, np.float32))
    return out


def save(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **data)


def load(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a transitions file written by `vislearn control cycles collect` ({e})") from None
    if "act" not in data or not ("obs" in data or "frames" in data):
        raise UserError(f"{path}: not a transitions file written by `vislearn control cycles collect`")
    return data


@dataclasses.dataclass
class Transitions:
    """One domain's transitions as tensors; `batch` draws a random minibatch (obs, act, next_obs)."""
    act: torch.Tensor
    obs: torch.Tensor | None = None
    next_obs: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    obs_idx: torch.Tensor | None = None
    next_idx: torch.Tensor | None = None
    first_idx: torch.Tensor | None = None
    stack: int = 1

    @classmethod
    def of(cls, data: dict) -> "Transitions":
        t = {k: torch.as_tensor(v) for k, v in data.items() if k in ("act", "obs", "next_obs", "frames", "obs_idx",
                                                                        "next_idx", "first_idx")}
        return cls(stack=int(data.get("stack", 1)), **t)

    def __len__(self) -> int:
        return len(self.act)

    @property
    def image(self) -> bool:
        return self.frames is not None

    def stacks(self, idx: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """uint8 [B, stack, H, W]: frames idx-stack+1 .. idx, the episode's first frame repeated before it."""
        offsets = torch.arange(-self.stack + 1, 1)
        at = torch.maximum(idx[:, None] + offsets[None], first[:, None])
        return self.frames[at]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.image:
            first = self.first_idx[idx]
            return self.stacks(self.obs_idx[idx], first), self.act[idx], self.stacks(self.next_idx[idx], first)
        return self.obs[idx], self.act[idx], self.next_obs[idx]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.batch(torch.randint(len(self), (n,), generator=generator))
