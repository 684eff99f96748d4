"""A trained policy as something that acts: encoder + MVP policy + the normalisation it was trained with, saved
as one file (`policy.pt`) that `evaluate`, `record`, `bc` and `ppo` all read and write.

The file (`torch.save` of a dict):
- `format`: "vislearn-control-policy"; `task`; `method` ("bc" | "ppo"); `encoder`: the spec (`encoders.py`);
- `policy`: the MVPPolicy state dict; `feature_dim`, `proprio_dim`, `action_dim`;
- `encoder_state`: the encoder's weights where they were trained (`scratch:`), else absent: a frozen encoder is
  rebuilt from its spec (a `ckpt:`/`mvp:` file read again from its path; `random:` is the seed-0 network);
- `norm`: {feature_mean, feature_std, proprio_mean, proprio_std} (lists; features and proprioception are
  standardised with the training set's statistics before the policy sees them);
- `render`: {size, camera, shadows}, the observations the policy was trained on;
- `extra`: anything else the trainer keeps (the policy head of PPO: `log_std`, the critic)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.errors import UserError

from .encoders import PixelEncoder, build_encoder, parse_spec
from .envs.sawyer import RenderSettings
from .policy import MVPPolicy

POLICY_FORMAT = "vislearn-control-policy"


@dataclass
class Norm:
    feature_mean: np.ndarray
    feature_std: np.ndarray
    proprio_mean: np.ndarray
    proprio_std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, proprio: np.ndarray, eps: float = 1e-6) -> "Norm":
        return cls(features.mean(0), features.std(0) + eps, proprio.mean(0), proprio.std(0) + eps)

    @classmethod
    def identity(cls, feature_dim: int, proprio_dim: int) -> "Norm":
        return cls(np.zeros(feature_dim), np.ones(feature_dim), np.zeros(proprio_dim), np.ones(proprio_dim))

    def to_dict(self) -> dict:
        return {k: np.asarray(v, dtype=np.float32).tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Norm":
        return cls(**{k: np.asarray(d[k], dtype=np.float32) for k in ("feature_mean", "feature_std", "proprio_mean",
                                                                        "proprio_std")})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (x - torch.as_tensor(self.feature_mean, dtype=x.dtype)) / torch.as_tensor(self.feature_std, dtype=x.dtype)

    def proprio(self, x: torch.Tensor) -> torch.Tensor:
        return (x - torch.as_tensor(self.proprio_mean, dtype=x.dtype)) / torch.as_tensor(self.proprio_std, dtype=x.dtype)


class Agent:
    """Acts on a vector env's batched observations (`envs.run_episodes`' `act`)."""

    def __init__(self, task: str, encoder: PixelEncoder | None, policy: MVPPolicy, norm: Norm,
                 render: RenderSettings, spec: str):
        self.task, self.encoder, self.policy, self.norm, self.render, self.spec = task, encoder, policy, norm, render, spec

    def features(self, obs: dict) -> torch.Tensor:
        if self.encoder is None:  # the state-based oracle
            return torch.as_tensor(np.asarray(obs["state"]), dtype=torch.float32)
        return self.encoder(torch.as_tensor(np.asarray(obs["pixels"])))

    @torch.no_grad()
    def __call__(self, obs: dict) -> np.ndarray:
        f = self.norm.features(self.features(obs))
        p = self.norm.proprio(torch.as_tensor(np.asarray(obs["proprio"]), dtype=torch.float32))
        return self.policy.eval()(f, p).clamp(-1.0, 1.0).numpy()


def policy_file(task: str, method: str, spec: str, policy: MVPPolicy, norm: Norm, render: RenderSettings,
                encoder: PixelEncoder | None = None, extra: dict | None = None) -> dict:
    """What `torch.save` writes for a policy (see the module's docstring)."""
    out = {"format": POLICY_FORMAT, "task": task, "method": method, "encoder": str(spec),
           "policy": policy.state_dict(), "feature_dim": policy.feature_dim, "proprio_dim": policy.proprio_dim,
           "action_dim": policy.action_dim, "norm": norm.to_dict(), "render": asdict(render), "extra": extra or {}}
    if encoder is not None and not parse_spec(str(spec)).frozen:
        out["encoder_state"] = encoder.state_dict()
    return out


def load_agent(path: str | os.PathLike, task: str | None = None) -> tuple[Agent, dict]:
    """The agent saved in `path` (and the whole file); a file of another task than `task` is a one-line error."""
    ckpt = read_torch_file(path, "policy file")
    if not isinstance(ckpt, dict) or ckpt.get("format") != POLICY_FORMAT:
        raise UserError(f"{path}: not a policy file (as `vislearn control bc` / `ppo` write: policy.pt)")
    if task is not None and ckpt["task"] != task:
        raise UserError(f"{path}: a policy for task {ckpt['task']!r}, not {task!r}")
    spec = parse_spec(ckpt["encoder"], where=f"{path}: encoder")
    encoder = build_encoder(spec)
    if encoder is not None and "encoder_state" in ckpt:
        encoder.load_state_dict(ckpt["encoder_state"])
    if encoder is not None:
        encoder.eval()
    policy = MVPPolicy(ckpt["feature_dim"], ckpt["proprio_dim"], ckpt["action_dim"])
    policy.load_state_dict(ckpt["policy"])
    agent = Agent(ckpt["task"], encoder, policy.eval(), Norm.from_dict(ckpt["norm"]), RenderSettings(**ckpt["render"]),
                  ckpt["encoder"])
    return agent, ckpt
