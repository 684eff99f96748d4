"""Which RL library trains the source policies and oracles of `vislearn control cycles` faster on this machine's CPU.

Runs stable-baselines3's SAC and PPO (each with its RL-Zoo MuJoCo settings) on one gymnasium MuJoCo task for the
same CPU-time budget, one thread each, and prints the deterministic return (5 episodes) every `--every` seconds of
process CPU time. Usage (both at once on 2 cores, one per algorithm):

    python bench/control/cycles_sac_vs_ppo.py --algo sac --env HalfCheetah-v5 --minutes 6 --seed 0
    python bench/control/cycles_sac_vs_ppo.py --algo ppo --env HalfCheetah-v5 --minutes 6 --seed 0
"""
from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback


def returns(model, env_id: str, episodes: int = 5, seed: int = 10_000) -> float:
    env = gym.make(env_id)
    totals = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            done = term or trunc
        totals.append(total)
    return float(np.mean(totals))


class Clock(BaseCallback):
    def __init__(self, env_id: str, minutes: float, every: float, algo: str):
        super().__init__()
        self.env_id, self.budget, self.every, self.algo = env_id, minutes * 60.0, every, algo
        self.start = time.process_time()
        self.next = every
        self.eval_time = 0.0

    def _on_step(self) -> bool:
        used = time.process_time() - self.start - self.eval_time
        if used >= self.next or used >= self.budget:
            t0 = time.process_time()
            ret = returns(self.model, self.env_id)
            self.eval_time += time.process_time() - t0
            print(json.dumps({"algo": self.algo, "cpu_s": round(used, 1), "steps": self.num_timesteps,
                              "return": round(ret, 1)}), flush=True)
            self.next += self.every
        return used < self.budget


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=("sac", "ppo"), required=True)
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--every", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    env = gym.make(a.env)
    if a.algo == "sac":  # RL-Zoo HalfCheetah/Hopper: learning_starts 10k, defaults otherwise
        model = SAC("MlpPolicy", env, learning_starts=10_000, seed=a.seed, device="cpu")
    else:  # RL-Zoo HalfCheetah-v3 PPO settings
        model = PPO("MlpPolicy", env, n_steps=512, batch_size=64, gamma=0.98, learning_rate=2.0633e-05,
                    ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92, max_grad_norm=0.8,
                    vf_coef=0.58096, normalize_advantage=True, seed=a.seed, device="cpu",
                    policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU,
                                       net_arch=dict(pi=[256, 256], vf=[256, 256])))
    model.learn(total_timesteps=10**9, callback=Clock(a.env, a.minutes, a.every, a.algo))


if __name__ == "__main__":
    main()
