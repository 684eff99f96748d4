"""Policies of one domain: the source policy that transfer carries across, and the oracle trained in the target.

Trained with stable-baselines3's PPO and RL-Zoo's tuned MuJoCo settings (`ZOO`), then exported to a plain policy
file (`policy.pt`: observation normaliser + actor MLP, deterministic mean action) that loads without SB3.

Why SB3's PPO, not SAC and not the control family's own PPO (measured here, bench/control/cycles_sac_vs_ppo.py,
HalfCheetah-v5, 1 thread each, docs/control.md): PPO ran 780 env steps/s and reached a return of 1,853 after 3
CPU-minutes; SAC (RL-Zoo settings, one gradient step per env step) ran 62 steps/s and was still below zero (−190),
so on these 2 cores SAC's sample efficiency does not pay for its updates. The control family's PPO is MVP's, built
around Sawyer task objects and frozen pixel encoders; SB3's runs any gymnasium env as it is.

Resume: `last.zip` (SB3's model with its optimizer) and `vecnormalize.pkl` are written atomically after each
rollout; `--resume` continues from them with fresh episodes (SB3 does not save environments), so a resumed run is
close to, not bit-identical with, one never stopped."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vislearn.common.checkpoint import load_state, read_torch_file
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_file, atomic_path

from .domains import Domain, make_env

KIND = "vislearn control cycles policy"
RUN_FILES = ("config.json", "domain.xml", "last.zip", "vecnormalize.pkl", "metrics.jsonl", "policy.pt",
             "results.json", "curve.png")
# RL-Zoo's tuned PPO settings for these tasks (rl-baselines3-zoo hyperparams/ppo.yml, the -v3 entries)
_COMMON = dict(n_steps=512, batch_size=64, gae_lambda=0.92, gamma=0.98, n_epochs=20, ent_coef=0.000401762,
               learning_rate=2.0633e-05, clip_range=0.1, max_grad_norm=0.8, vf_coef=0.58096)
ZOO = {
    "HalfCheetah-v5": _COMMON,
    "Walker2d-v5": _COMMON,
    "Hopper-v5": dict(n_steps=512, batch_size=32, gae_lambda=0.99, gamma=0.999, n_epochs=5, ent_coef=0.00229519,
                      learning_rate=9.80828e-05, clip_range=0.2, max_grad_norm=0.7, vf_coef=0.835671),
    # RL-Zoo sets only gamma 0.9999 for Swimmer (a swimmer's reward comes late); SB3's defaults otherwise
    "Swimmer-v5": dict(n_steps=2048, batch_size=64, gae_lambda=0.95, gamma=0.9999, n_epochs=10, ent_coef=0.0,
                       learning_rate=3e-4, clip_range=0.2, max_grad_norm=0.5, vf_coef=0.5),
}
HIDDEN = [256, 256]
EVAL_SEED = 10_000  # evaluation episodes' seeds 10,000.. (collect's are seed * 2,000,000 + episode (+1,000,000))
CLIP_OBS = 10.0


class Actor(nn.Module):
    """Normalised observation -> MLP (ReLU) -> mean action, clipped to the action range."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=HIDDEN):
        super().__init__()
        layers, d = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, act_dim)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_var", torch.ones(obs_dim))
        self.register_buffer("act_low", -torch.ones(act_dim))
        self.register_buffer("act_high", torch.ones(act_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = ((obs - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)).clamp(-CLIP_OBS, CLIP_OBS)
        return torch.maximum(torch.minimum(self.head(self.body(z)), self.act_high), self.act_low)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()


def export_actor(model, vecnorm, env) -> Actor:
    """Our Actor with the weights of an SB3 PPO MlpPolicy (ReLU, pi [256, 256]) and VecNormalize's statistics."""
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = Actor(obs_dim, act_dim)
    pol = model.policy
    linears = [m for m in pol.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    for ours, theirs in zip([m for m in actor.body if isinstance(m, nn.Linear)], linears):
        ours.load_state_dict(theirs.state_dict())
    actor.head.load_state_dict(pol.action_net.state_dict())
    actor.obs_mean.copy_(torch.as_tensor(vecnorm.obs_rms.mean, dtype=torch.float32))
    actor.obs_var.copy_(torch.as_tensor(vecnorm.obs_rms.var, dtype=torch.float32))
    actor.act_low.copy_(torch.as_tensor(env.action_space.low, dtype=torch.float32))
    actor.act_high.copy_(torch.as_tensor(env.action_space.high, dtype=torch.float32))
    return actor.eval()


def save_policy(path: Path, actor: Actor, domain: Domain, xml: str, info: dict) -> None:
    state = {"kind": KIND, "version": 1, "obs_dim": actor.obs_mean.numel(),
             "act_dim": actor.head.out_features, "hidden": HIDDEN,
             "state_dict": {k: v.detach().cpu().clone() for k, v in actor.state_dict().items()},
             "domain": dataclasses.asdict(domain), "xml": xml, "info": info}
    with atomic_file(path, "wb") as f:
        torch.save(state, f)


def load_policy(path) -> tuple[Actor, dict]:
    """The actor (eval mode) and the file's entries (`domain`, `xml`: the domain it was trained in)."""
    meta = read_torch_file(path, "policy file")
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise UserError(f"{path}: not a dynamics-cycles policy file (written by `vislearn control cycles "
                        "train-policy`)")
    actor = Actor(meta["obs_dim"], meta["act_dim"], meta["hidden"])
    load_state(actor, meta["state_dict"], path)
    return actor.eval(), meta


def rollout_returns(env, act, episodes: int, seed: int) -> list[float]:
    """Undiscounted returns of `episodes` episodes (seeds seed, seed+1, ...) with `act(obs) -> action`."""
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += float(r)
            done = term or trunc
        out.append(total)
    return out


def policy_returns(actor: Actor, domain: Domain, xml: str, episodes: int, seed: int = EVAL_SEED) -> list[float]:
    """A policy's returns in a domain on the evaluation episodes."""
    env = make_env(domain, xml)
    try:
        return rollout_returns(env, actor.act, episodes, seed)
    finally:
        env.close()


def train_policy(domain: Domain, xml: str, out: Path, steps: int, minutes: float, seed: int, resume: bool,
                 log=print) -> dict:
    """PPO in one domain until `steps` env steps or `minutes` of this process's CPU time (summed over resumes)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from vislearn.common.jsonio import read_jsonl, write_jsonl

    if domain.observation != "state":
        raise UserError("train-policy: policies act on states; an image domain's oracle is the state policy")
    torch.set_num_threads(1)  # small networks: one thread each is faster, and two runs share 2 cores
    zoo = ZOO.get(domain.task, _COMMON)
    venv = DummyVecEnv([lambda: Monitor(make_env(domain, xml))])
    metrics = read_jsonl(out / "metrics.jsonl") if resume and (out / "metrics.jsonl").exists() else []
    if resume and (out / "last.zip").exists():
        venv = VecNormalize.load(str(out / "vecnormalize.pkl"), venv)
        model = PPO.load(out / "last.zip", env=venv, device="cpu")
        log(f"resumed {out / 'last.zip'} at {model.num_timesteps} steps")
    else:
        venv = VecNormalize(venv, gamma=zoo["gamma"], clip_obs=CLIP_OBS)
        model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **zoo,
                    policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
                                       net_arch=dict(pi=HIDDEN, vf=HIDDEN)))
    used0 = metrics[-1]["cpu_minutes"] if metrics else 0.0
    start = time.process_time()

    class Checkpoint(BaseCallback):
        def _on_step(self) -> bool:
            return (time.process_time() - start) / 60 + used0 < minutes or minutes <= 0

        def _on_rollout_end(self) -> None:
            rets = [e["r"] for e in self.model.ep_info_buffer]
            metrics.append({"steps": int(self.model.num_timesteps),
                            "cpu_minutes": round((time.process_time() - start) / 60 + used0, 3),
                            "mean_return": float(np.mean(rets)) if rets else None})
            if len(metrics) % 10 == 0:
                _save(self.model, venv, out)
                write_jsonl(out / "metrics.jsonl", metrics)
                log(f"steps {metrics[-1]['steps']}  return {metrics[-1]['mean_return']}  "
                    f"cpu {metrics[-1]['cpu_minutes']:.1f} min")

    left = steps - model.num_timesteps
    if left > 0 and (minutes <= 0 or used0 < minutes):
        model.learn(total_timesteps=left, callback=Checkpoint(), reset_num_timesteps=False)
    _save(model, venv, out)
    write_jsonl(out / "metrics.jsonl", metrics)
    actor = export_actor(model, venv, venv.envs[0])
    venv.close()
    rets = policy_returns(actor, domain, xml, 10)
    results = {"steps": int(model.num_timesteps), "cpu_minutes": metrics[-1]["cpu_minutes"] if metrics else 0.0,
               "return_mean": float(np.mean(rets)), "return_std": float(np.std(rets)), "returns": rets,
               "eval_seeds": "10000..10009", "domain": domain.describe()}
    save_policy(out / "policy.pt", actor, domain, xml, results)
    return results


def _save(model, venv, out: Path) -> None:
    with atomic_path(out / "last.zip") as tmp:
        model.save(tmp)
    with atomic_path(out / "vecnormalize.pkl") as tmp:
        venv.save(str(tmp))
