"""Dynamics-cycles speed on these CPUs, each figure next to its baseline measured in the same run:

- env steps/s (random actions, state observation) of each named pair's MJCF variants against gymnasium's stock
  environment of the same task (`gym.make("HalfCheetah-v5")` ...): the cost of an edited model (a copied leg is a
  bigger model) and of our env layer; the image domain (tracking camera, grey frames) against the same stock env;
- map-training steps/s (`fit.map_losses` + backward + Adam step + the discriminators' step, as `fit` runs it) for a
  state pair and the image pair, against forward-model training steps/s at the same batch size (the first stage of
  `fit`, the cheapest learning step of the method).

    nice -n 10 .venv/bin/python bench/control/bench_cycles.py [--steps 2000] [--image-steps 200] [--map-steps 30]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vislearn.control.cycles import data as datamod  # noqa: E402
from vislearn.control.cycles.domains import make_env, variant_xml  # noqa: E402
from vislearn.control.cycles.fit import build, map_step  # noqa: E402
from vislearn.control.cycles.pairs import CONFIGS, check_pair, domain_xmls, load_pair  # noqa: E402


def rate(env, steps: int) -> float:
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    acts = rng.uniform(low, high, size=(steps, len(low))).astype(np.float32)
    env.reset(seed=0)
    t = time.perf_counter()
    for k in range(steps):
        _, _, term, trunc, _ = env.step(acts[k])
        if term or trunc:
            env.reset()
    out = steps / (time.perf_counter() - t)
    env.close()
    return out


def stock_rate(task: str, steps: int, cache: dict) -> float:
    import gymnasium as gym

    if task not in cache:
        cache[task] = rate(gym.make(task), steps)
    return cache[task]


def env_table(steps: int, image_steps: int) -> None:
    cache: dict[str, float] = {}
    print(f"env steps/s, random actions ({steps} steps each; image domains {image_steps}), 1 thread")
    print(f"  {'pair':18s} {'side':6s} {'domain':44s} {'variant':>8s} {'stock':>8s} {'ratio':>6s}")
    for name in sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem != "defaults"):
        cfg, _ = load_pair(name)
        for side in ("source", "target"):
            d = cfg.domain(side)
            if side == "source" and name != "cheetah_armature2" and d.task in cache:
                continue  # a stock source measured already
            n = image_steps if d.observation == "image" else steps
            r = rate(make_env(d, variant_xml(d)), n)
            s = stock_rate(d.task, steps, cache)
            print(f"  {name:18s} {side:6s} {d.describe()[:44]:44s} {r:8.0f} {s:8.0f} {r / s:6.2f}")


def map_rate(pair: str, steps: int, transitions: int, batch: int, overrides=()) -> tuple[float, float]:
    cfg, _ = load_pair(pair, [f"batch_size={batch}", *overrides])
    xmls = domain_xmls(cfg)
    sizes = check_pair(cfg, xmls)
    src_d = datamod.collect(cfg.domain("source"), xmls["source"], transitions, cfg.episode_steps, 0)
    tgt_d = datamod.collect(cfg.domain("target"), xmls["target"], transitions, cfg.episode_steps, 1)
    src, tgt = datamod.Transitions.of(src_d), datamod.Transitions.of(tgt_d)
    torch.manual_seed(0)
    corr = build(cfg, sizes)
    corr.set_stats(src_d, None if sizes.image else tgt_d)
    g = torch.Generator().manual_seed(0)
    # baseline: the source forward model's training step at the same batch size
    opt_f = torch.optim.Adam(corr.T_x.parameters(), lr=cfg.lr_forward)

    def forward_step():
        x, a, x1 = src.sample(batch, g)
        loss = corr.T_x.loss(x, a, x1)
        opt_f.zero_grad()
        loss.backward()
        opt_f.step()

    for m in corr.forward_models():
        m.requires_grad_(False)
    opt = torch.optim.Adam(corr.state_parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam([p for d in corr.discriminators() for p in d.parameters()], lr=cfg.lr)

    def one_map_step():
        map_step(corr, src.sample(batch, g), tgt.sample(batch, g), cfg, opt, opt_d)

    def timed(fn, n):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return n / (time.perf_counter() - t)

    corr.T_x.requires_grad_(True)
    f = timed(forward_step, steps)
    corr.T_x.requires_grad_(False)
    return timed(one_map_step, steps), f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="env steps per state domain")
    ap.add_argument("--image-steps", type=int, default=200, help="env steps per image domain")
    ap.add_argument("--map-steps", type=int, default=30, help="timed training steps per figure")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    env_table(args.steps, args.image_steps)
    print(f"training steps/s at batch {args.batch} (the configs' networks: maps and forward models 256x256), 1 thread")
    for pair in ("cheetah_armature2", "cheetah_3leg", "cheetah_image"):
        n = 300 if pair == "cheetah_image" else 1000
        m, f = map_rate(pair, args.map_steps, n, args.batch, ["heldout_steps=0"])
        print(f"  {pair:18s} map step {m:7.1f}/s   forward-model step {f:7.1f}/s   map / forward {m / f:.3f}")


if __name__ == "__main__":
    main()
