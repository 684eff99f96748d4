"""One policy file for every command (`policy.pt`): the policy (normalisers, actor, log-std), its critic, and what
rebuilds its world: the robot, the environment settings and the randomisation ranges it was trained under."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from vislearn.common.checkpoint import load_state, read_torch_file
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_file

from .policies import Policy

KIND = "vislearn control humanoid policy"


def policy_state(policy: Policy, critic, arch: str, envs, settings, rand, cfg) -> dict:
    return {"kind": KIND, "version": 1, "arch": arch, "obs_dim": envs.obs_dim, "priv_dim": envs.priv_dim,
            "n_act": envs.n_act, "history": policy.history,
            "policy": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
            "critic": {k: v.detach().cpu().clone() for k, v in critic.state_dict().items()},
            "env": dataclasses.asdict(settings), "randomization": dataclasses.asdict(rand),
            "config": dataclasses.asdict(cfg)}


def save_policy(path: Path, state: dict) -> None:
    import torch

    with atomic_file(path, "wb") as f:
        torch.save(state, f)


def load_policy(path) -> tuple[Policy, dict]:
    """The policy (eval mode, on the CPU) and the file's other entries; `policy.critic_state` is its critic's."""
    meta = read_torch_file(path, "policy file")
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise UserError(f"{path}: not a humanoid-locomotion policy file (written by `vislearn control humanoid "
                        "train-teacher` or `train-student`)")
    policy = Policy(meta["arch"], meta["obs_dim"], meta["priv_dim"], meta["n_act"], meta["history"])
    load_state(policy, meta["policy"], path)
    policy.critic_state = meta["critic"]
    return policy.eval(), meta
