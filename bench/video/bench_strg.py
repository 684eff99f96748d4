"""What the STRG head costs on CPU, against the scene stream alone on the same trunk, same run.

    python bench/bench_strg.py              # ~1-2 min on 2 cores
    python bench/bench_strg.py --threads 8 --iters 5

For each trunk (small3d at 8x64x64, the synthetic demo's; I3D ResNet-50 at 8x112x112) and batch:
eval (no_grad) and training step of the scene model and of STRG over the same trunk, 4 slots
per frame with ~80% of the (frame, slot) boxes real, and the head alone (RoIAlign + 3 graph
layers, from a precomputed feature map). Ratios are to the scene model measured alongside.
"""

from __future__ import annotations

import argparse
import sys

import torch

from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402
from bench_models import eval_step_fn, n_params, timed, train_step_fn  # noqa: E402

SETTINGS = [  # trunk, input side, STRG options (node_dim 512 and RoI 7 as the paper; 3 on the 4x4 small3d map)
    ("small3d", 64, {"node_dim": 128, "roi_size": 3}),
    ("i3d_r50", 112, {"node_dim": 512, "roi_size": 7}),
]


def clip_batch(B: int, side: int, T: int = 8, N: int = 4, num_classes: int = 174) -> dict:
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(B, T, N, generator=g) > 0.2
    boxes = torch.cat([torch.rand(B, T, N, 2, generator=g) * 0.6 + 0.2, torch.rand(B, T, N, 2, generator=g) * 0.3 + 0.1], -1)
    return {"frames": torch.randn(B, 3, T, side, side, generator=g), "rgb_boxes": boxes * mask.unsqueeze(-1),
            "rgb_box_mask": mask, "label": torch.randint(0, num_classes, (B,), generator=g)}


def main(argv=None):
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--iters", type=int, default=3, help="timed steps per mode (median reported)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, 8 frames, "
          f"4 slots; median of {args.iters}\n")
    print(f"{'trunk':9s} {'model':6s} {'params':>11s} {'eval s':>8s} {'x scene':>8s} {'train s':>8s} {'x scene':>8s}"
          f" {'head eval s':>12s} {'head share':>11s}")
    for trunk, side, opts in SETTINGS:
        batch = clip_batch(args.batch, side)
        models = {"scene": create_model(trunk, 174), "strg": create_model("strg", 174, scene=trunk, **opts)}
        strg = models["strg"].eval()
        with torch.no_grad():
            fmap = strg.feature_map(batch)

        def head():
            with torch.no_grad():
                strg.graph_features(fmap, batch["rgb_boxes"], batch["rgb_box_mask"])

        t_eval = timed({**{k: eval_step_fn(m, batch) for k, m in models.items()}, "head": head}, args.iters)
        t_train = timed({k: train_step_fn(m, batch) for k, m in models.items()}, args.iters)
        for name, m in models.items():
            extra = (f" {t_eval['head']:12.4f} {t_eval['head'] / t_eval['strg']:10.1%}" if name == "strg" else "")
            print(f"{trunk:9s} {name:6s} {n_params(m):11,d} {t_eval[name]:8.4f} {t_eval[name] / t_eval['scene']:8.2f}"
                  f" {t_train[name]:8.4f} {t_train[name] / t_train['scene']:8.2f}{extra}")


if __name__ == "__main__":
    sys.exit(run_main(main))
