"""Which library ViT to build ViT_P / ViT_C on: timm's `VisionTransformer` (conv stem as `embed_layer`) or
torchvision's (`conv_stem_configs`). Same architecture (parameters checked equal), CPU speed of an eval forward
and of a training step (forward + backward), alternating the two so that machine noise hits both alike.

    .venv/bin/python bench/backbones/bench_vit_library.py [--size tiny|1gf|4gf] [--batch N] [--reps N] [--threads N]
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import time

import torch
from torch import nn
from torchvision.models.vision_transformer import ConvStemConfig, VisionTransformer as TorchvisionViT

from vislearn.backbones.vit import SIZES, build_vit


def torchvision_vit_c(size) -> nn.Module:
    stem = [ConvStemConfig(c, 3, s, nn.BatchNorm2d, nn.ReLU) for c, s in zip(size.stem_channels, size.stem_strides)]
    return TorchvisionViT(size.img_size, size.patch_size, size.depth - 1, size.heads, size.width,
                          int(size.width * size.mlp_ratio), conv_stem_configs=stem)


def supports(size) -> dict[str, tuple[bool, bool]]:
    """What each library's ViT_C offers, probed (timm, torchvision)."""
    tv = torchvision_vit_c(size)
    x = torch.randn(1, 3, size.img_size, size.img_size)
    other = torch.randn(1, 3, size.img_size + 32, size.img_size + 32)

    def works(fn) -> bool:
        try:
            fn()
            return True
        except Exception:  # noqa: BLE001  (a probe: any failure means "not offered")
            return False

    timm_dyn = build_vit(size, True, dynamic_img_size=True).eval()
    tv_args = inspect.signature(TorchvisionViT).parameters  # what torchvision's constructor takes
    return {
        "forward_features (tokens before the head)": (True, hasattr(tv, "forward_features")),
        "NCHW feature maps per block (dense tasks)": (
            works(lambda: build_vit(size, True).forward_intermediates(x, indices=2)), hasattr(tv, "forward_intermediates")),
        "another input size (position embedding resampled)": (works(lambda: timm_dyn(other)), works(lambda: tv(other))),
        "average pooling without class token": (works(lambda: build_vit(size, True, class_token=False, global_pool="avg")),
                                                "global_pool" in tv_args or "class_token" in tv_args),
        "patch dropout (drop tokens, MAE-style)": (works(lambda: build_vit(size, True, patch_drop_rate=0.5)),
                                                   "patch_drop_rate" in tv_args),
        "stochastic depth (drop_path_rate)": (works(lambda: build_vit(size, True, drop_path_rate=0.1)),
                                              "drop_path_rate" in tv_args or "stochastic_depth_prob" in tv_args),
    }


def seconds(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=[s for s in SIZES if s in ("tiny", "1gf", "4gf")])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    size = SIZES[a.size]
    models = {"timm": build_vit(size, conv_stem=True), "torchvision": torchvision_vit_c(size)}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert len(set(params.values())) == 1, params
    x = torch.randn(a.batch, 3, size.img_size, size.img_size)
    y = torch.randint(0, 1000, (a.batch,))

    def eval_step(m):
        m.eval()
        with torch.no_grad():
            m(x)

    def train_step(m):
        m.train()
        m.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(m(x), y).backward()

    times = {(k, s): [] for k in models for s in ("eval", "train")}
    for m in models.values():  # warm-up
        eval_step(m), train_step(m)
    for _ in range(a.reps):
        for k, m in models.items():
            times[(k, "eval")] += seconds(lambda: eval_step(m), 1)
            times[(k, "train")] += seconds(lambda: train_step(m), 1)
    print(f"ViT_C-{a.size}: {params['timm'] / 1e6:.2f}M parameters in both, {size.img_size}px, batch {a.batch}, "
          f"{a.threads} thread(s), median of {a.reps} (ms per batch)")
    print(f"{'library':<12} {'eval fwd':>9} {'train fwd+bwd':>14}")
    for k in models:
        print(f"{k:<12} {1e3 * statistics.median(times[(k, 'eval')]):9.0f} "
              f"{1e3 * statistics.median(times[(k, 'train')]):14.0f}")
    print(f"\n{'offers':<52} {'timm':>5} {'torchvision':>12}")
    for what, (t, v) in supports(size).items():
        print(f"{what:<52} {'yes' if t else 'no':>5} {'yes' if v else 'no':>12}")


if __name__ == "__main__":
    main()
