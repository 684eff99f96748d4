"""Scene trunks on CPU: eval and training clips/s at the demo's clip size, against small3d and r3d_18 measured
in the same run (calls interleaved, so load from other processes hits all alike).

    python bench/bench_scene_trunks.py                 # ~3 min on 2 cores, 1 thread as the demo trains
    python bench/bench_scene_trunks.py --side 112 --threads 4

Rows: small3d and r3d_18 (the baselines, random init), the two MobileNetV2 trunks trained whole (the
configs/video/ssv2 recipes), and the same trunks as the demo trains them: lower blocks frozen (`--frozen`) and
served from the feature cache, only the later blocks and the frame-order head run. "cache fill" is the
one-time cost per clip of computing the frozen blocks' output (decoding not included).
"""
from __future__ import annotations

import argparse
import sys

import torch

from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402
from bench_models import eval_step_fn, timed, train_step_fn  # noqa: E402


def main(argv=None):
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the demo's setting, base.yaml)")
    ap.add_argument("--batch", type=int, default=16, help="clips per step (the demo's batch)")
    ap.add_argument("--side", type=int, default=128, help="input side (the demo's scene input_size)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--frozen", type=int, default=16, help="frozen MobileNetV2 blocks of the cached rows")
    ap.add_argument("--iters", type=int, default=3, help="timed steps per mode (median reported)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, S = args.batch, args.frames, args.side
    frames = torch.randn(B, 3, T, S, S)
    label = torch.randint(0, 18, (B,))
    pixel_batch = {"frames": frames, "label": label}
    frames_head = {"head": "frames", "num_frames": T}
    models = {
        "small3d": (create_model("small3d", 18), pixel_batch),
        "r3d_18": (create_model("r3d_18", 18), pixel_batch),
        "tsm_mobilenet_v2 whole": (create_model("tsm_mobilenet_v2", 18), pixel_batch),
        "i3d_mobilenet_v2 whole": (create_model("i3d_mobilenet_v2", 18), pixel_batch),
    }
    fill = {}
    for name in ("tsm_mobilenet_v2", "i3d_mobilenet_v2"):
        m = create_model(name, 18, frozen_blocks=args.frozen, **frames_head)
        with torch.no_grad():
            cached = {"frame_features": m.backbone.frame_features(frames), "label": label}
        models[f"{name} frozen {args.frozen}, cached"] = (m, cached)
        fill[f"{name} cache fill"] = (lambda m=m: m.backbone.frame_features(frames))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {B}, {T}x{S}x{S} clips, "
          f"18 classes; median of {args.iters} steps\n")
    with torch.no_grad():
        t_fill = timed(fill, args.iters)
    t_eval = timed({k: eval_step_fn(m, b) for k, (m, b) in models.items()}, args.iters)
    t_train = timed({k: train_step_fn(m, b) for k, (m, b) in models.items()}, args.iters)
    base = ("small3d", "r3d_18")
    print("| model | trainable params | eval clips/s | x small3d | x r3d_18 | train clips/s | x small3d | x r3d_18 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (m, _) in models.items():
        ev, tr = B / t_eval[name], B / t_train[name]
        n = sum(p.numel() for p in m.parameters() if p.requires_grad)
        print(f"| {name} | {n:,} | {ev:.1f} | {ev * t_eval[base[0]] / B:.2f} | {ev * t_eval[base[1]] / B:.2f} | "
              f"{tr:.1f} | {tr * t_train[base[0]] / B:.2f} | {tr * t_train[base[1]] / B:.2f} |")
    for name, t in t_fill.items():
        fps = B / t
        print(f"| {name} (once per video) | - | {fps:.1f} | {fps * t_eval[base[0]] / B:.2f} | "
              f"{fps * t_eval[base[1]] / B:.2f} | - | - | - |")


if __name__ == "__main__":
    sys.exit(run_main(main))
