"""ViT_C against ViT_P at equal flops: training step (forward + backward + AdamW step) and inference images/s,
measured in one run, the two models alternating round by round so that machine noise hits both alike, median of
the rounds; the C/P ratios printed next to each other, beside the C/P flops ratio (FlopCounterMode, meta device).

    .venv/bin/python bench/backbones/bench_vit_c_vs_p.py [--rounds N] [--threads N] [--device cpu|cuda]
        [--configs tiny:64:64,tiny:128:32,1gf:224:8]   (size:img_size:batch)
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from vislearn.backbones.registry import create_backbone, measure


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench(size: str, img: int, batch: int, rounds: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    names = {"P": f"vit_p_{size}", "C": f"vit_c_{size}"}
    models = {k: create_backbone(n, img_size=img).to(device) for k, n in names.items()}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    flops = {k: measure(n, img_size=img)[1] for k, n in names.items()}
    x = torch.randn(batch, 3, img, img, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    def train_step(k):
        m = models[k].train()
        opts[k].zero_grad(set_to_none=True)
        nn.functional.cross_entropy(m(x), y).backward()
        opts[k].step()

    @torch.no_grad()
    def infer(k):
        models[k].eval()(x)

    for k in models:  # warm-up
        train_step(k), infer(k)
    times = {(k, s): [] for k in models for s in ("train", "infer")}
    for _ in range(rounds):
        for k in models:
            times[(k, "train")].append(timed(lambda: train_step(k), device))
            times[(k, "infer")].append(timed(lambda: infer(k), device))
    ips = {key: batch / statistics.median(v) for key, v in times.items()}
    return {"size": size, "img": img, "batch": batch, "flops": flops, "ips": ips}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny:64:64,tiny:128:32,1gf:224:8", help="size:img_size:batch, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"ViT_C vs ViT_P, {a.device} ({a.threads} thread(s) on the CPU), median of {a.rounds} rounds, models alternating; "
          f"images/s (train: forward + backward + AdamW step; infer: eval forward, no gradients)")
    head = (f"{'size':<5} {'px':>4} {'batch':>5} | {'GMACs P':>7} {'C/P':>6} | {'train P':>8} {'train C':>8} {'C/P':>6} | "
            f"{'infer P':>8} {'infer C':>8} {'C/P':>6}")
    print(head)
    print("-" * len(head))
    for spec in a.configs.split(","):
        size, img, batch = spec.split(":")
        r = bench(size, int(img), int(batch), a.rounds, device)
        f, i = r["flops"], r["ips"]
        print(f"{size:<5} {img:>4} {batch:>5} | {f['P'] / 2e9:7.3f} {f['C'] / f['P']:6.3f} | "
              f"{i[('P', 'train')]:8.1f} {i[('C', 'train')]:8.1f} {i[('C', 'train')] / i[('P', 'train')]:6.3f} | "
              f"{i[('P', 'infer')]:8.1f} {i[('C', 'infer')]:8.1f} {i[('C', 'infer')] / i[('P', 'infer')]:6.3f}", flush=True)


if __name__ == "__main__":
    main()
