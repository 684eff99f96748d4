"""MAE's saving: the encoder runs on the visible 25% of the tokens. Measured in one run, alternating (so machine
noise hits both alike), median of `--reps`, CPU:

- encoder training step (forward + backward) on the visible tokens (`MaskedAutoencoder.forward_encoder`, mask
  ratio 0.75) against the same encoder on all tokens (mask ratio 0), and their ratio (the paper: ~1/4 of the
  blocks' cost, plus the stem that runs on the whole image);
- the whole MAE step (encoder + light decoder + loss, mask ratio 0.75) against the encoder alone on all tokens:
  what pre-training one image costs next to a supervised pass.

    .venv/bin/python bench/backbones/bench_mae.py [--configs vit_p_tiny:64:8,vit_p_1gf:224,vit_c_1gf:224]
                                                  [--batch 16] [--reps 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from vislearn.backbones import create_backbone
from vislearn.pretrain.mae import MaskedAutoencoder, random_masking


def step_time(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench(name: str, img: int, patch: int | None, batch: int, reps: int) -> dict:
    kw = {"img_size": img, "num_classes": 0, **({"patch_size": patch} if patch else {})}
    torch.manual_seed(0)
    model = MaskedAutoencoder(create_backbone(name, **kw), decoder_dim=128, decoder_depth=2, decoder_heads=4)
    x = torch.randn(batch, 3, img, img)

    def encoder_step(ratio: float):
        def run():
            m = random_masking(batch, model.tokens, ratio)
            model.forward_encoder(x, m).sum().backward()
        return run

    def mae_step():
        model(x)[0].backward()

    fns = {"encoder, 25% tokens": encoder_step(0.75), "encoder, all tokens": encoder_step(0.0),
           "MAE step (0.75)": mae_step}
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k] += step_time(fn, 1)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"config": f"{name} {img}px" + (f" patch {patch}" if patch else ""), "tokens": model.tokens, **med}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="vit_p_tiny:64:8,vit_c_tiny:128,vit_p_1gf:224,vit_c_1gf:224")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.reps}; seconds per training step")
    print(f"{'config':<26}{'tokens':>7}{'enc 25%':>10}{'enc all':>10}{'ratio':>8}{'MAE step':>10}{'MAE/all':>9}")
    for spec in args.configs.split(","):
        parts = spec.split(":")
        r = bench(parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else None, args.batch, args.reps)
        a, f, m = r["encoder, 25% tokens"], r["encoder, all tokens"], r["MAE step (0.75)"]
        print(f"{r['config']:<26}{r['tokens']:>7}{a:>10.3f}{f:>10.3f}{a / f:>8.2f}{m:>10.3f}{m / f:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
