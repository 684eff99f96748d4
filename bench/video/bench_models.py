"""Model speed on CPU: STIN variants and scene streams, each against a baseline run alongside.

    python bench/bench_models.py            # ~1-2 min on 2 cores
    python bench/bench_models.py --iters 10 --threads 8

STIN: one training step (forward, backward, SGD-momentum step) at batch 72, C=256, T=8, N=4,
174 classes, 20% empty slots, vs a plain MLP on the flattened boxes with the same parameter count
as STIN. Then, per variant, the forward STIN had before the speed work (`bench/video/stin_reference.py`,
same modules and weights) against today's, official behaviour and masked: the goals are
official <= 0.8x the old official step and masked <= 1.0x the official step.
Scene: clips/s at 8x112x112 for small3d, r3d_18 and i3d_r50, eval (no_grad) and train step,
vs r3d_18.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

# Threads that wait for each other sleep instead of spinning: on a machine shared with other jobs, a
# spinning OpenMP thread whose partner lost its core makes small matrix products 5-20x slower
# (measured here: a 2-thread STIN step ~75 ms passive, 0.5-2 s active while another job ran).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402
from stin_reference import reference_logits  # noqa: E402


def timed(steps: dict, iters: int, warmup: int = 1) -> dict:
    """Median seconds per call of each step. Calls are interleaved round-robin, so a burst of
    load from other processes hits the model and its baseline alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(iters):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def train_step_fn(model: nn.Module, batch: dict):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch), batch["label"]).backward()
        opt.step()

    return step


def eval_step_fn(model: nn.Module, batch: dict):
    model.eval()

    def step():
        with torch.no_grad():
            model(batch)

    return step


class BoxMLP(nn.Module):
    """Baseline: flattened boxes -> 2 hidden layers -> classes (no structure at all)."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, batch):
        return self.net(batch["boxes"].flatten(1))


def mlp_matching(n_params: int, in_dim: int, num_classes: int) -> BoxMLP:
    # params = in*h + h + h*h + h + h*k + k  ->  h^2 + (in + k + 2) h + k - n = 0
    b = in_dim + num_classes + 2
    hidden = round((-b + math.sqrt(b * b - 4 * (num_classes - n_params))) / 2)
    return BoxMLP(in_dim, hidden, num_classes)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def box_batch(B, T=8, N=4, num_classes=174):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(B, T, N, generator=g) > 0.2
    return {
        "boxes": torch.rand(B, T, N, 4, generator=g) * mask.unsqueeze(-1),
        "box_ids": torch.tensor([1, 2, 2, 2]).repeat(B, 1),
        "box_mask": mask,
        "label": torch.randint(0, num_classes, (B,), generator=g),
    }


def bench_stin(args) -> list[tuple]:
    batch = box_batch(args.batch)
    models = {"MLP baseline (same #params as stin)": mlp_matching(n_params(create_model("stin", 174)), 8 * 4 * 4, 174)}
    for name in ("stin", "stin_oie", "stin_oie_nl"):
        models[f"{name} (masked, default)"] = create_model(name, 174)
    models["stin_oie_nl (official: no mask, frozen BN)"] = create_model("stin_oie_nl", 174, official=True)
    t = timed({k: train_step_fn(m, batch) for k, m in models.items()}, args.iters)
    t_base = next(iter(t.values()))
    return [(k, n_params(models[k]), t[k], t[k] / t_base) for k in models]


class Reference(nn.Module):
    """A STIN whose forward is the pre-speed-work implementation."""

    def __init__(self, stin: nn.Module):
        super().__init__()
        self.stin = stin

    def forward(self, batch):
        return reference_logits(self.stin, batch)


def bench_stin_paths(args) -> list[tuple]:
    """(variant, old official s, official s, masked s, official/old, masked/official, masked/old masked)."""
    batch = box_batch(args.batch)
    out = []
    for name in ("stin", "stin_oie", "stin_oie_nl"):
        models = {"old official": Reference(create_model(name, 174, official=True)),
                  "official": create_model(name, 174, official=True),
                  "masked": create_model(name, 174),
                  "old masked": Reference(create_model(name, 174))}
        t = timed({k: train_step_fn(m, batch) for k, m in models.items()}, args.iters)
        out.append((name, t["old official"], t["official"], t["masked"], t["old masked"],
                    t["official"] / t["old official"], t["masked"] / t["official"], t["masked"] / t["old masked"]))
    return out


def bench_scene(args) -> list[tuple]:
    B = args.scene_batch
    batch = {
        "frames": torch.randn(B, 3, 8, 112, 112, generator=torch.Generator().manual_seed(0)),
        "label": torch.arange(B) % 174,
    }
    models = {name: create_model(name, 174) for name in ("r3d_18", "small3d", "i3d_r50")}
    t_eval = timed({k: eval_step_fn(m, batch) for k, m in models.items()}, args.scene_iters)
    t_train = timed({k: train_step_fn(m, batch) for k, m in models.items()}, args.scene_iters)
    ref_eval, ref_train = t_eval["r3d_18"], t_train["r3d_18"]
    return [
        (k, n_params(m), B / t_eval[k], ref_eval / t_eval[k], B / t_train[k], ref_train / t_train[k])
        for k, m in models.items()
    ]


def main(argv=None):
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--batch", type=int, default=72, help="STIN batch size (official 72)")
    ap.add_argument("--iters", type=int, default=5, help="timed STIN steps (median reported)")
    ap.add_argument("--stin-only", action="store_true", help="skip the scene streams")
    ap.add_argument("--scene-batch", type=int, default=4, help="clips per scene step")
    ap.add_argument("--scene-iters", type=int, default=2, help="timed scene steps per mode")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads\n")

    print(f"STIN training step, batch {args.batch}, C=256 T=8 N=4, 174 classes (median of {args.iters})")
    print(f"{'model':44s} {'params':>10s} {'s/step':>8s} {'x MLP time':>11s}")
    for label, p, t, r in bench_stin(args):
        print(f"{label:44s} {p:10,d} {t:8.4f} {r:11.2f}")

    print(f"\nSTIN forward before/after the speed work, train step ms (median of {args.iters}, interleaved)")
    print(f"{'variant':12s} {'old official':>12s} {'official':>9s} {'masked':>7s} {'old masked':>10s} "
          f"{'official/old':>12s} {'masked/official':>15s} {'masked/old masked':>17s}")
    for name, oo, o, m, om, r1, r2, r3 in bench_stin_paths(args):
        print(f"{name:12s} {oo * 1e3:12.1f} {o * 1e3:9.1f} {m * 1e3:7.1f} {om * 1e3:10.1f} {r1:12.2f} {r2:15.2f} {r3:17.2f}")
    if args.stin_only:
        return

    print(f"\nScene streams, 8x112x112 clips, batch {args.scene_batch} (median of {args.scene_iters})")
    print(f"{'model':12s} {'params':>11s} {'eval clip/s':>12s} {'x r3d_18':>9s} {'train clip/s':>13s} {'x r3d_18':>9s}")
    for name, p, ev, rev, tr, rtr in bench_scene(args):
        print(f"{name:12s} {p:11,d} {ev:12.2f} {rev:9.2f} {tr:13.2f} {rtr:9.2f}")


if __name__ == "__main__":
    sys.exit(run_main(main))
