"""One STIN training epoch at the size of the official compositional training set (54,919 videos,
batch 72, 762 steps), data and model together, on this machine's cores: today's path against the
path before the speed work, in the same run.

    python bench/bench_epoch.py                     # stin_oie_nl, 2 threads, then 2 DDP processes; ~4 min
    python bench/bench_epoch.py --model stin --threads 1 --old-steps 0

Data: a generated box store of --videos videos (24-56 annotated frames, a hand and 1-3 objects,
15% of boxes missing), read by `ClipDataset` with the official training crop. Model: the default
(masked) STIN variant, SGD momentum 0.9, weight decay 1e-4, grad-norm clip 5, through
`actions.engine.train_one_epoch` (what the training CLI runs). Before: the per-item loader path
(`__getitem__` + `collate`) and STIN's pre-speed-work forward (`bench/video/stin_reference.py`), timed
on its first --old-steps steps and scaled to the epoch (0: run the whole epoch). With --bf16 (the
default) today's path runs a second epoch under CPU bfloat16 autocast (`amp_cpu=true`).
"""
from __future__ import annotations

import argparse
import os
import itertools
import sys
import tempfile
import time
from pathlib import Path

# Threads that wait for each other sleep instead of spinning: on a machine shared with other jobs, a
# spinning OpenMP thread whose partner lost its core makes small matrix products 5-20x slower
# (measured here: a 2-thread STIN step ~75 ms passive, 0.5-2 s active while another job ran).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP
import numpy as np


import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vislearn.video.actions.distributed import DistInfo  # noqa: E402
from vislearn.video.actions.engine import train_one_epoch  # noqa: E402
from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.video.actions.samplers import GlobalBatchSampler  # noqa: E402
from bench_models import Reference  # noqa: E402
from vislearn.video.data.annotations import VideoBoxes  # noqa: E402
from vislearn.video.data.box_store import BoxStore, build_store  # noqa: E402
from vislearn.video.data.clip_dataset import ClipDataset, collate  # noqa: E402
from vislearn.video.data.ssv2 import Record  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def generated_videos(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for v in range(n):
        tracks = ["hand"] + [f"{k:04d}" for k in range(rng.integers(1, 4))]
        nf = int(rng.integers(24, 57))
        frame = np.repeat(np.arange(nf), len(tracks))
        track = np.tile(np.arange(len(tracks)), nf)
        keep = rng.random(len(frame)) > 0.15
        frame, track = frame[keep], track[keep]
        xy = rng.uniform([0, 0], [320, 200], (len(frame), 2))
        wh = rng.uniform([10, 10], [120, 60], (len(frame), 2))
        yield VideoBoxes(video_id=str(100000 + v), frame_index=np.arange(nf, dtype=np.int32),
                         box_frame=frame.astype(np.int32), xyxy=np.hstack([xy, xy + wh]).astype(np.float32),
                         track=[tracks[t] for t in track], category=["thing"] * len(frame))


class FirstSteps:
    """The first `steps` batches of a loader (all of them when steps is 0)."""

    def __init__(self, loader, steps: int):
        self.loader, self.steps = loader, steps or len(loader)

    def __len__(self) -> int:
        return min(self.steps, len(self.loader))

    def __iter__(self):
        return itertools.islice(iter(self.loader), len(self))


def epoch(model, ds, args, steps: int = 0, amp_cpu: bool = False, dist: DistInfo = DistInfo()) -> tuple[float, int, dict]:
    sampler = GlobalBatchSampler(len(ds), args.batch, seed=0, rank=dist.rank, world_size=dist.world_size)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=args.workers, collate_fn=collate)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=1e-4)
    run = FirstSteps(loader, steps)
    stats = train_one_epoch(model, run, opt, torch.device("cpu"), 0, dist=dist, clip_grad_norm=5.0,
                            amp=amp_cpu, amp_cpu=amp_cpu, progress=False)
    return stats["train_seconds"], len(run), stats


def data_parallel_epoch(rank: int, world: int, store: str, args, result) -> None:
    """One process of a `world`-process DistributedDataParallel epoch over gloo (as `torchrun` runs the
    training CLI): each rank takes its share of every global batch of args.batch, BatchNorm synchronized."""
    import torch.distributed as td

    from vislearn.video.actions.distributed import synchronize_batchnorm

    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=world)
    try:
        ds = dataset(store)
        torch.manual_seed(0)
        model = synchronize_batchnorm(create_model(args.model, 174), torch.device("cpu"))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        seconds, steps, stats = epoch(ddp, ds, args, dist=DistInfo(rank=rank, world_size=world))
        if rank == 0:
            result.put((seconds, steps, stats["train_samples_per_s"]))
    finally:
        td.destroy_process_group()


def dataset(store: str) -> ClipDataset:
    boxes = BoxStore(store)
    labels = {f"class {k}": k for k in range(174)}
    records = [Record(id=v, template=f"class {i % 174}", label="", placeholders=[])
               for i, v in enumerate(boxes.video_ids())]
    return ClipDataset(records, labels, boxes, input_size=224, crop="multiscale", default_frame_size=(427, 240), seed=0)


def main(argv=None) -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=54919)
    ap.add_argument("--batch", type=int, default=72)
    ap.add_argument("--model", default="stin_oie_nl", choices=["stin", "stin_oie", "stin_oie_nl"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: load in the training process)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="also time today's path under CPU bfloat16 autocast (amp_cpu=true)")
    ap.add_argument("--old-steps", type=int, default=60, help="steps of the old path to time (0: whole epoch)")
    ap.add_argument("--processes", type=int, default=2,
                    help="also time today's path as this many 1-thread DDP processes (gloo), as torchrun would run it")
    ap.add_argument("--port", type=int, default=29517, help="local port of the DDP rendezvous")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_store(generated_videos(args.videos), Path(tmp) / "store")
        ds = dataset(str(Path(tmp) / "store"))
        print(f"{args.videos} videos in a box store ({time.perf_counter() - t:.0f} s to generate), {args.model}, "
              f"batch {args.batch}, {torch.get_num_threads()} threads, {args.workers} workers")

        new_s, steps, stats = epoch(create_model(args.model, 174), ds, args)
        print(f"today  (batched loader, fast forward):     {new_s:7.1f} s for {steps} steps "
              f"({stats['train_samples_per_s']:,.0f} samples/s, {stats['train_data_seconds']:.1f} s waiting for data)")
        if args.bf16:
            bf_s, _, bf = epoch(create_model(args.model, 174), ds, args, amp_cpu=True)
            print(f"today, bfloat16 autocast (amp_cpu=true):   {bf_s:7.1f} s for {steps} steps "
                  f"({bf['train_samples_per_s']:,.0f} samples/s, {bf['train_data_seconds']:.1f} s waiting for data)")
        if args.processes > 1:
            import torch.multiprocessing as mp

            result = mp.get_context("spawn").SimpleQueue()
            mp.spawn(data_parallel_epoch, args=(args.processes, str(Path(tmp) / "store"), args, result),
                     nprocs=args.processes)
            dp_s, dp_steps, dp_rate = result.get()
            print(f"today, {args.processes} processes x 1 thread (DDP, gloo): {dp_s:7.1f} s for {dp_steps} steps "
                  f"({dp_rate:,.0f} samples/s)")
        batcher, ds._batcher = ds._batcher, None
        old_s, old_steps, _ = epoch(Reference(create_model(args.model, 174)), ds, args, args.old_steps)
        ds._batcher = batcher
        old_epoch = old_s * steps / old_steps
        scaled = "" if old_steps == steps else f" (timed {old_steps} steps, scaled to {steps})"
        print(f"before (per-item loader, old forward):     {old_epoch:7.1f} s{scaled}")
        print(f"\ntoday / before: {new_s / old_epoch:.2f}x;  epoch {new_s:.1f} s "
              f"(goal <= 30 s: {'met' if new_s <= 30 else 'NOT met'})")
        if args.bf16:
            print(f"bfloat16 / before: {bf_s / old_epoch:.2f}x;  epoch {bf_s:.1f} s "
                  f"(goal <= 30 s: {'met' if bf_s <= 30 else 'NOT met'})")
        if args.processes > 1:
            print(f"{args.processes} processes / before: {dp_s / old_epoch:.2f}x;  epoch {dp_s:.1f} s "
                  f"(goal <= 30 s: {'met' if dp_s <= 30 else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(run_main(main))
