"""Training images per second of ReSim and LooC against MoCo-v2, measured in the same run on the same images: the
cost of ReSim's region losses (windows, roi_align, two more heads and queues) and of LooC's extra key views and
heads, as ratios to MoCo-v2's step.

    python bench/pretrain/bench_contrastive.py [--img-size 64] [--batch-size 64] [--steps 6] [--rounds 3] [--threads 1]

Each round runs every method for --steps training steps (after one warm-up step) on the object set's images, in
turn, so slow drift of a shared machine falls on all of them; the median over rounds is printed. A step is what the
trainer does: draw and render the views, forward, backward, SGD, momentum update, queue push.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vislearn.pretrain.contrastive.train import ContrastConfig, batch_views, build_learner, load_bank, \
    make_optimizer, step_loss

SETTINGS = {"moco": dict(method="moco"), "moco (+ rotation)": dict(method="moco", augment="colour,rotation,texture"),
            "resim": dict(method="resim"), "resim (FPN 128)": dict(method="resim", fpn_channels=128),
            "looc": dict(method="looc")}


def steps_per_second(name: str, args, bank) -> float:
    cfg = ContrastConfig(data="objects", out="unused", img_size=args.img_size, batch_size=args.batch_size,
                         **SETTINGS[name])
    learner = build_learner(cfg).train()
    optimizer, _ = make_optimizer(learner, cfg, 10)
    rng, generator, aug = np.random.default_rng(0), torch.Generator().manual_seed(0), cfg.augment_config()
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        idx = rng.choice(len(bank), cfg.batch_size, replace=False)
        loss, _ = step_loss(learner, bank, idx, batch_views(bank, idx, cfg, aug, rng), cfg, rng, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.update_keys()
        if step:
            times.append(time.perf_counter() - t0)
    return cfg.batch_size / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bank = load_bank(ContrastConfig(data="objects", out="unused", img_size=args.img_size), None, print)
    rates = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name in SETTINGS:
            rates[name].append(steps_per_second(name, args, bank))
    base = statistics.median(rates["moco"])
    print(f"MobileNetV2, {args.img_size} px, batch {args.batch_size}, {args.threads} thread(s); median of "
          f"{args.rounds} rounds of {args.steps} steps")
    print(f"{'method':<20}{'images/s':>10}{'x MoCo-v2 time':>16}")
    for name, r in rates.items():
        m = statistics.median(r)
        print(f"{name:<20}{m:>10.1f}{base / m:>16.2f}")


if __name__ == "__main__":
    main()
