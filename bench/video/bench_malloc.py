"""Kernel time of training steps with glibc's default heap vs `common.malloc.retain_freed_memory`.

    python bench/bench_malloc.py [--steps 40] [--threads 1] [--rounds 3]

Each round runs the same training steps in two fresh processes, one with the default heap and one
with freed memory retained, and reads their CPU times and page faults from getrusage. Two workloads:
STIN+OIE+NL at batch 72 (the box model) and the demo's scene step (TSM MobileNetV2 blocks 16-18 +
frame-order head at batch 16 on cached block-15 features: [16, 160, 8, 4, 4]).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from vislearn.common.cli import Parser, run_main

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, sys, time
retain, workload, steps, threads = {retain}, {workload!r}, {steps}, {threads}
from vislearn.common.malloc import retain_freed_memory
if retain:
    assert retain_freed_memory()
import torch
torch.set_num_threads(threads)
torch.manual_seed(0)
from vislearn.video.actions.models import create_model
if workload == "stin":
    sys.path.insert(0, {bench!r})
    from bench_models import box_batch
    model = create_model("stin_oie_nl", 174)
    batch = box_batch(72)
else:
    model = create_model("tsm_mobilenet_v2", 18, frozen_blocks=16, head="frames", num_frames=8)
    batch = {{"frame_features": torch.randn(16, 160, 8, 4, 4), "label": torch.randint(0, 18, (16,))}}
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
model.train()
def step():
    out = model(batch)
    loss = torch.nn.functional.cross_entropy(out, batch["label"])
    opt.zero_grad(); loss.backward(); opt.step()
step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
print(json.dumps({{"wall": t1 - t0, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                  "faults": r1.ru_minflt - r0.ru_minflt}}))
"""


def run(retain: bool, workload: str, steps: int, threads: int) -> dict:
    code = CHILD.format(bench=str(ROOT / "bench" / "video"), retain=retain, workload=workload, steps=steps,
                        threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(f"{'workload':<8} {'heap':<9} {'wall s':>7} {'user s':>7} {'sys s':>7} {'faults':>9} {'wall ratio':>10}")
    for workload in ("stin", "scene"):
        res = {False: [], True: []}
        for _ in range(args.rounds):  # interleaved, so load from other processes hits both alike
            for retain in (False, True):
                res[retain].append(run(retain, workload, args.steps, args.threads))
        med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in res.items()}
        for retain in (False, True):
            m = med[retain]
            print(f"{workload:<8} {'retained' if retain else 'default':<9} {m['wall']:7.2f} {m['user']:7.2f} "
                  f"{m['sys']:7.2f} {m['faults']:9.0f} {m['wall'] / med[False]['wall']:10.2f}")
    print(f"{args.steps} training steps per process, {args.threads} thread(s), median of {args.rounds} rounds")


if __name__ == "__main__":
    sys.exit(run_main(main))
