"""PPO speed on these CPUs: env steps/s of a whole PPO run (rollout + update) next to the rollout alone, from states
and from pixels through a frozen ViT-tiny, and PPO update steps/s (gradient steps on a rollout); with --libraries,
our PPO against stable-baselines3 2.9.2 with MVP's layout on `reach` from states (the measurement that chose ours:
env steps/s including updates, and the training success / return after the same number of steps).

Each figure sits next to its baseline measured in the same run, as a ratio.

    nice -n 10 .venv/bin/python bench/control/bench_ppo.py [--steps 2048] [--size 64] [--skip pixels]
    nice -n 10 .venv/bin/python bench/control/bench_ppo.py --libraries --lib-steps 60000 [--seeds 0 1]

--libraries needs `pip install stable-baselines3==2.9.2` (not a dependency of vislearn).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vislearn.control.envs  # noqa: E402,F401  (MUJOCO_GL before mujoco)
from vislearn.control import ppo  # noqa: E402
from vislearn.control.actor_critic import ActorCritic  # noqa: E402
from vislearn.control.encoders import build_encoder, parse_spec  # noqa: E402
from vislearn.control.envs import PROPRIO_DIM, STATE_DIM  # noqa: E402


def config(**kw) -> ppo.PPOConfig:
    cfg = ppo.load_config(ppo.DEFAULT_CONFIG)
    for k, v in kw.items():
        setattr(cfg, k, v)
    cfg.eval_episodes, cfg.threads = 0, 1
    return cfg


def rollout_only(cfg: ppo.PPOConfig) -> float:
    """env steps/s of the rollouts alone (the same policy acting, features per step, no update)."""
    spec = parse_spec(cfg.encoder)
    enc = build_encoder(spec)
    feat = ppo.Featurizer(spec, enc, torch.device("cpu"))
    torch.manual_seed(0)
    ac = ActorCritic(feat.dim, PROPRIO_DIM, 4)
    envs = ppo.Envs(cfg, spec.pixels, 0)
    envs.start()
    try:
        ppo.collect(ac, envs, feat, cfg)  # warm-up (the first frames make the GL contexts)
        t = time.perf_counter()
        n = max(1, cfg.steps // (cfg.num_envs * cfg.num_steps))
        for _ in range(n):
            ppo.collect(ac, envs, feat, cfg)
        return n * cfg.num_envs * cfg.num_steps / (time.perf_counter() - t)
    finally:
        envs.close()


def whole_run(cfg: ppo.PPOConfig) -> dict:
    with tempfile.TemporaryDirectory() as d:
        ppo.train(cfg, Path(d) / "run", log=lambda *a: None, progress=False)
        import json

        rows = [json.loads(line) for line in open(Path(d) / "run" / "metrics.jsonl")]
    rows = rows[1:] or rows  # the first update pays the GL contexts
    steps = sum(cfg.num_envs * cfg.num_steps for _ in rows)
    upd = sum(r["update_s"] for r in rows)
    grad_steps = len(rows) * cfg.epochs * cfg.minibatches
    return {"env_steps_per_s": steps / sum(r["rollout_s"] + r["update_s"] for r in rows),
            "update_grad_steps_per_s": grad_steps / upd, "update_samples_per_s": steps * cfg.epochs / upd}


def speed(args) -> None:
    cases = [("state", "state")]
    if "pixels" not in args.skip:
        cases.append((f"pixels {args.size}px + frozen ViT-P tiny (random weights, 64 px input)", "random:vit_p_tiny"))
    for name, enc in cases:
        cfg = config(encoder=enc, steps=args.steps, size=args.size)
        alone = rollout_only(cfg)
        whole = whole_run(cfg)
        print(f"{name}: PPO env steps/s {whole['env_steps_per_s']:.0f} (rollout + update) vs rollout alone "
              f"{alone:.0f}: ratio {whole['env_steps_per_s'] / alone:.2f}; update {whole['update_grad_steps_per_s']:.0f} "
              f"gradient steps/s ({whole['update_samples_per_s']:.0f} samples/s, minibatch "
              f"{cfg.num_envs * cfg.num_steps // cfg.minibatches})", flush=True)


# ---------------------------------------------------------------------------------------------- the library
def sb3_run(steps: int, seed: int, cfg: ppo.PPOConfig) -> dict:
    """stable-baselines3's PPO with MVP's layout and the same settings: the state and proprioception each projected
    to 128-d (shared by actor and critic, as MVP), MLPs [256, 128, 64] SELU, learned log-std from 0, clip 0.1 for the
    policy and the value, 10 epochs, 4 minibatches, gamma/lambda, lr cosine, grad norm 1, value coefficient 2, 2
    environments in processes, Meta-World's reward times reward_scale, the horizon's cut bootstrapped (SB3 does), and success too (as ours)."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import SubprocVecEnv
    from torch import nn

    from vislearn.control.envs import SawyerTaskEnv

    class Flat(gym.Wrapper):
        def __init__(self):
            env = SawyerTaskEnv(cfg.task, pixels=False)
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM + PROPRIO_DIM,), np.float32)

        def _flat(self, o):
            return np.concatenate([o["state"], o["proprio"]]).astype(np.float32)

        def reset(self, **kw):
            o, info = self.env.reset(**kw)
            return self._flat(o), info

        def step(self, a):
            o, r, term, trunc, info = self.env.step(a)
            if term and cfg.bootstrap_success:  # as ours: success bootstrapped like the horizon's cut (SB3 reads
                term, trunc = False, True  # TimeLimit.truncated = truncated and not terminated)
            return self._flat(o), r * cfg.reward_scale, term, trunc, info

    class MVPFeatures(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, 256)
            self.image_proj, self.proprio_enc = nn.Linear(STATE_DIM, 128), nn.Linear(PROPRIO_DIM, 128)

        def forward(self, x):
            return torch.cat([self.image_proj(x[:, :STATE_DIM]), self.proprio_enc(x[:, STATE_DIM:])], -1)

    class Stats(BaseCallback):
        def __init__(self):
            super().__init__()
            self.episodes, self.ret = [], np.zeros(cfg.num_envs)

        def _on_step(self):
            self.ret += self.locals["rewards"] / cfg.reward_scale
            for i, d in enumerate(self.locals["dones"]):
                if d:
                    self.episodes.append((self.num_timesteps, float(self.ret[i]), bool(self.locals["infos"][i]["success"])))
                    self.ret[i] = 0
            return True

    import math

    vec = SubprocVecEnv([Flat] * cfg.num_envs, start_method="fork")
    vec.seed(ppo.PPO_SEEDS + seed * 10_000_000)
    n = cfg.num_envs * cfg.num_steps
    model = PPO("MlpPolicy", vec, n_steps=cfg.num_steps, batch_size=n // cfg.minibatches, n_epochs=cfg.epochs,
                learning_rate=lambda left: cfg.lr * 0.5 * (1 + math.cos(math.pi * (1 - left))), gamma=cfg.gamma,
                gae_lambda=cfg.lam, clip_range=cfg.clip, clip_range_vf=cfg.clip, ent_coef=0.0, vf_coef=cfg.value_coef,
                max_grad_norm=cfg.max_grad_norm, seed=seed, device="cpu", verbose=0,
                policy_kwargs=dict(features_extractor_class=MVPFeatures, net_arch=dict(pi=[256, 128, 64], vf=[256, 128, 64]),
                                   activation_fn=nn.SELU, log_std_init=math.log(cfg.init_noise_std)))
    cb = Stats()
    t = time.perf_counter()
    model.learn(steps, callback=cb)
    secs = time.perf_counter() - t
    vec.close()
    return {"steps_per_s": steps / secs, "episodes": cb.episodes}


def ours_run(steps: int, seed: int, cfg: ppo.PPOConfig) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = config(steps=steps, seed=seed)
        ppo.train(cfg, Path(d) / "run", log=lambda *a: None, progress=False)
        ck = torch.load(Path(d) / "run" / "last.pt", weights_only=True)
    secs = ck["seconds"]  # rollouts + updates (SB3's figure: its `learn`, environments made before both)
    eps = [(m["steps"], e[0], e[1]) for m in ck["metrics"] for e in m["_episodes"]]
    return {"steps_per_s": steps / secs, "episodes": eps}


def summary(eps, steps: int) -> str:
    last = [e for e in eps if e[0] > steps * 0.8]  # the last fifth of the run
    return (f"{len(eps)} episodes; last fifth: success {np.mean([e[2] for e in last]) if last else float('nan'):.2f}, "
            f"return {np.mean([e[1] for e in last]) if last else float('nan'):.0f}")


def libraries(args) -> None:
    torch.set_num_threads(1)
    cfg = config()
    for seed in args.seeds:
        ours = ours_run(args.lib_steps, seed, cfg)
        sb3 = sb3_run(args.lib_steps, seed, cfg)
        print(f"seed {seed}, {args.lib_steps} steps on {cfg.task} from states, {cfg.num_envs} envs: ours "
              f"{ours['steps_per_s']:.0f} env steps/s ({summary(ours['episodes'], args.lib_steps)}); stable-baselines3 "
              f"{sb3['steps_per_s']:.0f} env steps/s ({summary(sb3['episodes'], args.lib_steps)}); speed ratio "
              f"ours/SB3 {ours['steps_per_s'] / sb3['steps_per_s']:.2f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2048)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--skip", nargs="*", default=[], choices=["pixels"])
    p.add_argument("--libraries", action="store_true")
    p.add_argument("--lib-steps", type=int, default=30_000)
    p.add_argument("--seeds", type=int, nargs="*", default=[0])
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.libraries:
        libraries(args)
    else:
        speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
