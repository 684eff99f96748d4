"""How fast MobileSAM's TinyViT image encoder embeds an image on one CPU core: ours against the reference
(`mobilesam-mirror`) on the same weights at 1024 px (alternating, so machine noise hits both alike; the embeddings
are checked equal), ours at smaller sizes, and optionally the official SAM ViT-B image encoder (one forward pass:
it takes about a minute) as the baseline MobileSAM replaces.

    .venv/bin/python bench/segment/bench_tiny_vit.py [--quick] [--reps N] [--threads N] [--vit-b]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import torch

from vislearn.segment.model.tiny_vit import build_tiny_vit_encoder


def reference_tiny_vit() -> torch.nn.Module:
    with warnings.catch_warnings():  # mobile_sam registers its models in timm's registry on import, with a warning
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry
    return sam_model_registry["vit_t"]().image_encoder


def official_vit_b() -> torch.nn.Module:
    from segment_anything.modeling import ImageEncoderViT

    return ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                           out_chans=256, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                           use_rel_pos=True, window_size=14, global_attn_indexes=(2, 5, 8, 11))


def randomise_(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and attention biases (both start at 1/0 and zeros)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attention_biases"):
                p.normal_()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 2.0)


def seconds(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    t = time.perf_counter()
    with torch.no_grad():
        y = model(x)
    return time.perf_counter() - t, y


def params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one timed pass each, no smaller sizes")
    p.add_argument("--reps", type=int, default=5, help="timed passes per model at 1024 px (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    p.add_argument("--vit-b", action="store_true", help="also time the official SAM ViT-B encoder (~60 s a pass)")
    a = p.parse_args()
    reps = 1 if a.quick else a.reps
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    ref = reference_tiny_vit()
    randomise_(ref)
    ref.eval()  # after randomising: the reference caches its attention biases in eval()
    ours = build_tiny_vit_encoder(1024).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 1024, 1024)
    for m in (ref, ours):  # warm-up
        seconds(m, x)
    times = {"ours": [], "reference": []}
    for _ in range(reps):
        t_ref, y_ref = seconds(ref, x)
        t_ours, y_ours = seconds(ours, x)
        times["reference"].append(t_ref)
        times["ours"].append(t_ours)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"TinyViT-5M + neck (MobileSAM's image encoder), {params(ours):.2f}M parameters (0.32M of them the unused "
          f"ImageNet head), 1 image, {a.threads} thread(s), median of {reps}")
    print(f"max |ours - reference| embedding difference: {(y_ours - y_ref).abs().max().item():.2e}")
    print(f"{'encoder':<34} {'px':>5} {'s / image':>10} {'vs reference':>13}")
    print(f"{'reference (mobile_sam TinyViT)':<34} {1024:>5} {med['reference']:10.2f} {1.0:12.2f}x")
    print(f"{'ours (vislearn tiny_vit)':<34} {1024:>5} {med['ours']:10.2f} "
          f"{med['reference'] / med['ours']:12.2f}x")
    if not a.quick:
        for size in (512, 256):
            small = build_tiny_vit_encoder(size).eval()
            small.load_state_dict(ours.state_dict())
            xs = torch.randn(1, 3, size, size)
            seconds(small, xs)
            t = statistics.median(seconds(small, xs)[0] for _ in range(reps))
            print(f"{'ours':<34} {size:>5} {t:10.2f} {med['reference'] / t:12.2f}x")
    if a.vit_b:
        vit_b = official_vit_b().eval()
        t, _ = seconds(vit_b, x)  # one pass, no warm-up: a minute on one core
        print(f"{'official SAM ViT-B (1 pass)':<34} {1024:>5} {t:10.2f} {med['reference'] / t:12.2f}x")
        print(f"ViT-B ({params(vit_b):.1f}M parameters) / TinyViT time: reference {t / med['reference']:.1f}x, "
              f"ours {t / med['ours']:.1f}x")


if __name__ == "__main__":
    main()
