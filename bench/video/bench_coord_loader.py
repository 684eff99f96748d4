"""Throughput of the coordinate-only loader (what STIN trains on): samples/s of ClipDataset
(load_frames=False, training crops) through a DataLoader at batch 72 (the trainer's
GlobalBatchSampler), over a generated Something-Else annotation file of --videos videos read
through the box store (and the in-memory JSON for comparison).

Two paths over the same dataset, measured in the same run: per item (`ClipDataset.__getitem__`,
then `collate`: the path every dataset had before) and batched (`ClipDataset.__getitems__` ->
`datasets.coord_batch`, the default for a box store). The goal: >= 20,000 samples/s per core
(0 workers: everything runs in the one process) for the batched path.

Baseline, measured in the same run: a plain Python loop over the raw arrays (boxes already parsed
into memory; centre segment frames, boxes into [8,4,4], normalised by the frame size) - the least
work a per-item loader has to do per sample.

    python bench/bench_coord_loader.py [--videos 3000] [--batch 72]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vislearn.video.data.annotations import AnnotationFile  # noqa: E402
from vislearn.video.actions.samplers import GlobalBatchSampler  # noqa: E402
from vislearn.video.data.box_store import BoxStore, index_boxes  # noqa: E402
from vislearn.video.data.clip_dataset import ClipDataset, collate  # noqa: E402
from vislearn.video.data.ssv2 import Record  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def fake_video(rng: random.Random, vid: str) -> list[dict]:
    """~40 annotated frames, hand + 1-3 objects, some boxes missing (like the real file)."""
    n_obj = rng.choice([1, 1, 2, 2, 3])
    frames = []
    for f in range(rng.randint(24, 56)):
        labels = []
        for k, tid in enumerate(["hand"] + [f"{i:04d}" for i in range(n_obj)]):
            if rng.random() < 0.15:
                continue
            x1, y1 = rng.uniform(0, 320), rng.uniform(0, 200)
            labels.append({"box2d": {"x1": x1, "y1": y1, "x2": x1 + rng.uniform(10, 120), "y2": y1 + rng.uniform(10, 60)},
                           "category": "thing", "standard_category": tid,
                           "gt_annotation": "object hand" if tid == "hand" else f"object {k - 1}"})
        frames.append({"name": f"{vid}/{f + 1:04d}.jpg", "nr_instances": len(labels), "gt_placeholders": ["thing"],
                       "labels": labels})
    return frames


def baseline(videos, frame_size=(427, 240), num_frames=8, num_slots=4) -> float:
    """Samples/s of the minimal loop over pre-parsed arrays."""
    w, h = frame_size
    scale = np.array([w, h, w, h], np.float32)
    t = time.perf_counter()
    for vb in videos:
        n = int(vb.frame_index[-1]) + 1
        idx = np.floor((np.arange(num_frames) + 0.5) * n / num_frames).astype(np.int64)
        rows = np.searchsorted(vb.frame_index, idx)
        out = np.zeros((num_frames, num_slots, 4), np.float32)
        tracks = vb.track_ids()[:num_slots]
        for ti, r in enumerate(rows):
            for k in np.nonzero(vb.box_frame == r)[0]:
                if vb.track[k] in tracks:
                    out[ti, tracks.index(vb.track[k])] = vb.xyxy[k] / scale
        torch.from_numpy(out)
    return len(videos) / (time.perf_counter() - t)


def loader_rate(ds: ClipDataset, batch: int, workers: int, per_item: bool = False, epochs: int = 1) -> float:
    """Samples/s through the trainer's kind of DataLoader (start-up included); `per_item` turns the
    batched path off (what `__getitems__` falls back to)."""
    batcher = ds._batcher
    if per_item:
        ds._batcher = None
    try:
        dl = DataLoader(ds, batch_sampler=GlobalBatchSampler(len(ds), batch, seed=0), num_workers=workers,
                        collate_fn=collate)
        t = time.perf_counter()
        n = 0
        for epoch in range(epochs):
            dl.batch_sampler.set_epoch(epoch)
            ds.set_epoch(epoch)
            for b in dl:
                n += len(b["video_id"])
        return n / (time.perf_counter() - t)
    finally:
        ds._batcher = batcher


def main(argv=None) -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=72)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = {str(100000 + i): fake_video(rng, str(100000 + i)) for i in range(args.videos)}
        (tmp / "boxes.json").write_text(json.dumps(data))
        index_boxes([tmp / "boxes.json"], tmp / "store")
        store = BoxStore(tmp / "store")
        ann = AnnotationFile(data, tmp / "boxes.json")
        labels = {f"class {k}": k for k in range(174)}
        records = [Record(id=v, template=f"class {i % 174}", label="", placeholders=[]) for i, v in enumerate(data)]
        videos = [store.get(v) for v in data]
        print(f"{args.videos} videos, 8 box frames x 4 slots, batch {args.batch}, torch threads 1")
        base = baseline(videos)
        print(f"{'path':<52} {'samples/s':>9}   x baseline")
        print(f"{'baseline: plain loop over parsed arrays':<52} {base:9.0f}   1.00")
        t = time.perf_counter()
        ds = ClipDataset(records, labels, store, input_size=224, crop="multiscale", default_frame_size=(427, 240), seed=0)
        print(f"(store dataset built in {time.perf_counter() - t:.2f} s, batched path ready: {ds._batcher is not None})")
        rates = {}
        for workers in (0, 2):
            for per_item in (True, False):
                name = f"DataLoader store, {'per item' if per_item else 'batched'}, {workers} workers"
                rates[name] = rate = loader_rate(ds, args.batch, workers, per_item, epochs=1 if per_item else 3)
                print(f"{name:<52} {rate:9.0f}   {rate / base:.2f}")
        jds = ClipDataset(records, labels, ann, input_size=224, crop="multiscale", default_frame_size=(427, 240), seed=0)
        rate = loader_rate(jds, args.batch, 0)
        print(f"{'DataLoader json (per item), 0 workers':<52} {rate:9.0f}   {rate / base:.2f}")
        fast = rates["DataLoader store, batched, 0 workers"]
        slow = rates["DataLoader store, per item, 0 workers"]
        print(f"\nbatched / per item, one core: {fast / slow:.1f}x;  batched: {fast:,.0f} samples/s per core "
              f"(goal >= 20,000: {'met' if fast >= 20000 else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(run_main(main))
