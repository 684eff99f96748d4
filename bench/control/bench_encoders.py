"""What an encoder costs a control run: features/s of the frozen encoders MVP's comparison uses (on raw 96 px
frames, resized inside as `build_encoder` does), and behaviour-cloning update steps/s on cached features against a
`scratch:` encoder trained end to end. Every figure sits next to its baseline measured in the same run (alternating,
median of --reps), as a ratio (> 1: faster than the baseline).

- features/s, batch --batch: `random:vit_p_tiny` and `random:vit_c_tiny` (64 px), `random:vit_s16_mvp@224` (MVP's
  ViT-S at its 224 px; the weights do not change the speed), against `imagenet` (MobileNetV2 at 96 px);
- BC update steps/s, batch 128: MVPPolicy (AdamW, MSE) on cached ViT-tiny features (what `bc` does with a frozen
  encoder) against the same policy on `scratch:vit_p_tiny` trained end to end on 64 px frames.

One torch thread (`--threads`), as the commands run beside environments on a shared 2-core machine.

    nice .venv/bin/python bench/control/bench_encoders.py [--reps 3] [--batch 32] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vislearn.control.encoders import build_encoder  # noqa: E402
from vislearn.control.policy import MVPPolicy  # noqa: E402

BASELINE = "imagenet"
ENCODERS = ("random:vit_p_tiny", "random:vit_c_tiny", "random:vit_s16_mvp@224")


def features_per_s(encoder, frames: torch.Tensor, n: int) -> float:
    with torch.no_grad():
        encoder(frames)  # warm-up
        t0 = time.perf_counter()
        for _ in range(n):
            encoder(frames)
    return n * len(frames) / (time.perf_counter() - t0)


def bc_steps_per_s(policy: MVPPolicy, encoder, inputs: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor,
                   n: int) -> float:
    """AdamW updates/s of `policy` (and `encoder`, when given: end to end on frames; else `inputs` are features)."""
    params = list(policy.parameters()) + (list(encoder.parameters()) if encoder is not None else [])
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step() -> None:
        f = encoder(inputs) if encoder is not None else inputs
        loss = torch.nn.functional.mse_loss(policy(f, proprio), actions)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0)


def median_pair(fa, fb, reps: int) -> tuple[float, float]:
    a, b = [], []
    for _ in range(reps):
        a.append(fa())
        b.append(fb())
    return statistics.median(a), statistics.median(b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=32, help="frames per encoder call")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (args.batch, 96, 96, 3), dtype=np.uint8))
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch} frames of 96x96, "
          f"median of {args.reps}")
    print(f"encoder features/s vs {BASELINE} (MobileNetV2, 96 px):")
    base_enc = build_encoder(BASELINE)
    for spec in ENCODERS:
        enc = build_encoder(spec)
        n = 1 if "224" in spec else 4
        fps, base = median_pair(lambda: features_per_s(enc, frames, n), lambda: features_per_s(base_enc, frames, 4),
                                args.reps)
        print(f"  {spec:<26} dim {enc.dim:<5} {enc.input_size:>3} px {fps:8.1f} features/s   baseline {base:8.1f}"
              f"   ratio {fps / base:.3g}")

    print("BC update steps/s, batch 128, MVPPolicy + AdamW: scratch:vit_p_tiny end to end (64 px frames) vs "
          "cached features:")
    cached_enc = build_encoder("random:vit_p_tiny")
    scratch = build_encoder("scratch:vit_p_tiny").train()
    big = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (128, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        feats = cached_enc(big)
    proprio, actions = torch.randn(128, 8), torch.rand(128, 4) * 2 - 1
    pol_cached, pol_scratch = MVPPolicy(cached_enc.dim, 8, 4), MVPPolicy(scratch.dim, 8, 4)
    end, base = median_pair(lambda: bc_steps_per_s(pol_scratch, scratch, big, proprio, actions, 2),
                            lambda: bc_steps_per_s(pol_cached, None, feats, proprio, actions, 100), args.reps)
    print(f"  {'scratch:vit_p_tiny':<26} {end:8.2f} steps/s   cached features {base:8.1f} steps/s   "
          f"ratio {end / base:.3g} ({base / end:.0f}x slower)")


if __name__ == "__main__":
    main()
