"""Humanoid-locomotion speed on these CPUs, each figure next to its baseline measured in the same run:

- env steps/s of LocoEnvs (random actions) with the paper's randomisation on, against it off (nominal dynamics);
  and LocoEnvs with randomisation off against gymnasium's own env of the same model (Walker2d-v5 / Humanoid-v5,
  stepped at the same control period), the cost of our layer;
- policy actions/s at batch = number of environments: the transformer and LSTM students against the MLP student
  (and the teacher MLP), on the same 16-token windows;
- rollout steps/s of training (the teacher acting on 32 environments) with the environments in 2 worker processes
  against all in the training process;
- PPO update time per update (5 epochs x 4 minibatches of the rollout), transformer against MLP student.

    nice -n 10 .venv/bin/python bench/control/bench_humanoid.py [--robot walker2d|humanoid] [--envs 32] [--steps 200]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vislearn.control.humanoid import train as T  # noqa: E402
from vislearn.control.humanoid.env import EnvSettings, LocoEnvs  # noqa: E402
from vislearn.control.humanoid.policies import ActorCritic, History, Policy  # noqa: E402
from vislearn.control.humanoid.randomization import Randomization  # noqa: E402


def env_rate(robot: str, n: int, steps: int, enabled: bool) -> float:
    envs = LocoEnvs(EnvSettings(robot=robot), n, Randomization(enabled=enabled), lambda i, k: 1000 * i + k)
    envs.start()
    rng = np.random.default_rng(0)
    acts = rng.uniform(-0.3, 0.3, size=(steps, n, envs.n_act))
    t = time.perf_counter()
    for k in range(steps):
        envs.step(acts[k])
    return n * steps / (time.perf_counter() - t)


def gymnasium_rate(robot: str, n: int, steps: int) -> float:
    import gymnasium as gym

    from vislearn.control.humanoid.robots import get_robot

    name = {"walker2d": "Walker2d-v5", "humanoid": "Humanoid-v5"}[robot]
    r = get_robot(robot)
    stock_dt = gym.make(name).unwrapped.model.opt.timestep  # its own integrator's step (RK4 at 2 / 3 ms)
    env = gym.make(name, frame_skip=max(1, round(r.timestep * r.frame_skip / stock_dt)))  # the same 20 ms per action
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(n * steps):
        _, _, term, trunc, _ = env.step(rng.uniform(-0.3, 0.3, size=env.action_space.shape).astype(np.float32))
        if term or trunc:
            env.reset()
    return n * steps / (time.perf_counter() - t)


def policy_rate(arch: str, envs: LocoEnvs, n: int, reps: int = 200) -> float:
    torch.manual_seed(0)
    p = Policy(arch, envs.obs_dim, envs.priv_dim, envs.n_act, 16).eval()
    hist = History(n, 16, envs.obs_dim)
    for _ in range(16):
        hist.push(np.random.default_rng(0).normal(size=(n, envs.obs_dim)).astype(np.float32))
    window, priv = torch.from_numpy(hist.buf.copy()), torch.randn(n, envs.priv_dim)
    with torch.no_grad():
        for _ in range(10):
            p.mean(window, priv)
        t = time.perf_counter()
        for _ in range(reps):
            p.mean(window, priv)
    return n * reps / (time.perf_counter() - t)


def update_seconds(arch: str, envs: LocoEnvs, n: int) -> float:
    cfg = T.LocoConfig(num_envs=n, num_steps=64, desired_kl=0)
    torch.manual_seed(0)
    p = Policy(arch, envs.obs_dim, envs.priv_dim, envs.n_act, 16)
    ac = ActorCritic(p, envs.priv_dim)
    N = n * 64
    batch = {"priv": torch.randn(N, envs.priv_dim), "actions": torch.randn(N, envs.n_act), "logp": torch.randn(N),
             "values": torch.randn(N), "mu": torch.zeros(N, envs.n_act), "std": torch.ones(N, envs.n_act),
             "advantages": torch.randn(N), "returns": torch.randn(N)}
    if arch != "teacher":
        batch["window"] = torch.randn(N, 16, envs.obs_dim + 1)
    opt = torch.optim.Adam(ac.parameters(), 3e-4)
    t = time.perf_counter()
    T.ppo_update(ac, opt, batch, cfg, 3e-4, 0.0, None, torch.Generator().manual_seed(0), torch.device("cpu"))
    return time.perf_counter() - t


def rollout_rate(robot: str, n: int, steps: int, workers: int) -> float:
    from vislearn.control.humanoid.workers import ProcEnvs

    cfg = T.LocoConfig(robot=robot, num_envs=n, num_steps=steps, workers=workers)
    seed_of = T.seed_fn(cfg)
    envs = ProcEnvs(EnvSettings(robot=robot), n, Randomization(), seed_of, workers) if workers else \
        LocoEnvs(EnvSettings(robot=robot), n, Randomization(), seed_of)
    try:
        envs.start()
        torch.manual_seed(0)
        ac = ActorCritic(Policy("teacher", envs.obs_dim, envs.priv_dim, envs.n_act, 16), envs.priv_dim)
        t = time.perf_counter()
        T.collect(ac, envs, None, cfg, torch.device("cpu"))
        return n * steps / (time.perf_counter() - t)
    finally:
        envs.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robot", default="walker2d", choices=("walker2d", "humanoid"))
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.envs
    print(f"robot {args.robot}, {n} environments, {args.steps} steps each, 1 thread")
    off = env_rate(args.robot, n, args.steps, False)
    on = env_rate(args.robot, n, args.steps, True)
    gym_rate = gymnasium_rate(args.robot, n, args.steps // 4)
    print(f"env steps/s: randomisation off {off:7.0f}   on {on:7.0f}   ratio on/off {on / off:.2f}")
    print(f"env steps/s: gymnasium {args.robot} env {gym_rate:7.0f}   LocoEnvs (off) / gymnasium {off / gym_rate:.2f}")
    r0, r2 = rollout_rate(args.robot, n, args.steps // 2, 0), rollout_rate(args.robot, n, args.steps // 2, 2)
    print(f"training rollout steps/s (teacher acting): in-process {r0:7.0f}   2 workers {r2:7.0f}   ratio {r2 / r0:.2f}")
    envs = LocoEnvs(EnvSettings(robot=args.robot), 1, Randomization(enabled=False), lambda i, k: k)
    rates = {a: policy_rate(a, envs, n) for a in ("mlp", "teacher", "lstm", "transformer")}
    print("policy actions/s at batch " + str(n) + ": " + "   ".join(f"{a} {r:8.0f}" for a, r in rates.items()))
    print(f"   transformer / mlp {rates['transformer'] / rates['mlp']:.2f}   lstm / mlp {rates['lstm'] / rates['mlp']:.2f}")
    up = {a: update_seconds(a, envs, n) for a in ("mlp", "transformer")}
    print(f"PPO update ({n * 64} samples, 5 epochs x 4 minibatches): mlp {up['mlp']:.2f} s   transformer "
          f"{up['transformer']:.2f} s   ratio {up['transformer'] / up['mlp']:.2f}")


if __name__ == "__main__":
    main()
