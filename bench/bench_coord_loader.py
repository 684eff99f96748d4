"""Throughput of the coordinate-only loader (what STIN trains on): samples/s of ClipDataset
(load_frames=False, training crops) through a DataLoader with 0 and 2 workers, batch 72, over a
generated Something-Else annotation file of --videos videos read through the box store
(and the in-memory JSON for comparison).

Baseline, measured in the same run: a plain Python loop over the raw arrays (boxes already parsed
into memory; centre segment frames, boxes into [8,4,4], normalised by the frame size) - the least
work any loader has to do per sample.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from datasets.annotations import AnnotationFile  # noqa: E402
from datasets.box_store import BoxStore, index_boxes  # noqa: E402
from datasets.clip_dataset import ClipDataset, collate  # noqa: E402
from datasets.ssv2 import Record  # noqa: E402


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


def loader_rate(ds: ClipDataset, batch: int, workers: int) -> float:
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate,
                    generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    n = 0
    for b in dl:
        n += len(b["video_id"])
    return n / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        print(f"{'baseline: plain loop over parsed arrays':<46} {base:9.0f} samples/s   1.00")
        for name, src in (("store", store), ("json", ann)):
            ds = ClipDataset(records, labels, src, input_size=224, default_frame_size=(427, 240), seed=0)
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            rate = len(ds) / (time.perf_counter() - t)
            print(f"{'ClipDataset[i] loop, ' + name:<46} {rate:9.0f} samples/s   {rate / base:.2f}")
            for workers in (0, 2):
                if name == "json" and workers:
                    continue
                rate = loader_rate(ds, args.batch, workers)
                print(f"{f'DataLoader {name}, {workers} workers (incl. start-up)':<46} {rate:9.0f} samples/s   {rate / base:.2f}")


if __name__ == "__main__":
    main()
