"""Box annotations at scale: open time and memory per data-loader worker, store vs json.load.

Generates a Something-Else-format JSON of --videos videos (default 50,000; the real merged file has
180,049), builds the store once, then in fresh worker processes measures
  json:  json.load of the whole file (what the official loader does in every worker)
  store: BoxStore open + 2,000 random per-video look-ups
reporting seconds and memory (peak RSS, and PSS which splits shared pages between processes).
The store's workers run 4 at once; json.load workers run one at a time (four at once would need
4x the memory shown), so the json figures are per worker.

  python bench/bench_box_store.py [--videos 50000] [--workers 4]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path


from vislearn.video.data.box_store import BoxStore, index_boxes  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def fake_video(rng: random.Random, vid: str) -> list[dict]:
    """Frames like the real file: ~40 frames, hand + 1-3 objects, annotation-tool fields included."""
    n_obj = rng.choice([1, 1, 1, 2, 2, 3])
    nouns = [rng.choice(["cup", "pen", "box", "phone", "bottle", "remote control"]) for _ in range(n_obj)]
    frames = []
    for f in range(rng.randint(24, 56)):
        labels = []
        for k, tid in enumerate(["hand"] + [f"{i:04d}" for i in range(n_obj)]):
            if rng.random() < 0.15:
                continue
            x1, y1 = rng.uniform(0, 300), rng.uniform(0, 180)
            labels.append({"box2d": {"x1": x1, "y1": y1, "x2": x1 + rng.uniform(10, 120), "y2": y1 + rng.uniform(10, 60)},
                           "category": "hand" if tid == "hand" else nouns[k - 1], "standard_category": tid,
                           "gt_annotation": "object hand" if tid == "hand" else f"object {k - 1}"})
        frames.append({"url": f"https://example.invalid/annotated_frames/{vid}/{f + 1:04d}.jpg", "split": "80perc_1",
                       "gt_placeholders": nouns, "name": f"{vid}/{f + 1:04d}.jpg", "nr_instances": len(labels),
                       "task_index": 1, "labels": labels})
    return frames


def _proc_kib(path: str, key: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def memory() -> dict:
    """Current RSS (shared mmap pages count fully) and PSS (shared pages split between processes)."""
    return {"rss": _proc_kib("/proc/self/status", "VmRSS:"), "pss": _proc_kib("/proc/self/smaps_rollup", "Pss:")}


def json_worker(path: str, q) -> None:
    base = memory()
    t = time.perf_counter()
    with open(path) as f:
        data = json.load(f)
    q.put({"open_s": time.perf_counter() - t, "videos": len(data), **memory(), "base_rss": base["rss"]})


def store_worker(folder: str, ids: list[str], barrier, q) -> None:
    base = memory()
    barrier.wait()
    t = time.perf_counter()
    store = BoxStore(folder)
    opened = time.perf_counter() - t
    rng = random.Random(os.getpid())
    t = time.perf_counter()
    for _ in range(2000):
        store.get(rng.choice(ids))
    lookup = (time.perf_counter() - t) / 2000
    q.put({"open_s": opened, "lookup_ms": lookup * 1e3, **memory(), "base_rss": base["rss"]})


def main() -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json-workers", type=int, default=2, help="json.load workers to measure (one at a time)")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "boxes.json"
        rng = random.Random(0)
        t = time.perf_counter()
        data = {str(100000 + i): fake_video(rng, str(100000 + i)) for i in range(args.videos)}
        with open(path, "w") as f:
            json.dump(data, f)
        ids = list(data)
        del data
        print(f"generated {args.videos} videos, {path.stat().st_size / 2**20:.0f} MiB of JSON "
              f"in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        meta = index_boxes([path], Path(tmp) / "store")
        build = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (Path(tmp) / "store").iterdir())
        print(f"store: built once in {build:.1f}s, {size / 2**20:.0f} MiB on disk, {meta['boxes']} boxes")

        q = ctx.Queue()
        json_rows = []
        for _ in range(args.json_workers):
            p = ctx.Process(target=json_worker, args=(str(path), q))
            p.start()
            json_rows.append(q.get())
            p.join()
        barrier = ctx.Barrier(args.workers)
        procs = [ctx.Process(target=store_worker, args=(str(Path(tmp) / "store"), ids, barrier, q))
                 for _ in range(args.workers)]
        for p in procs:
            p.start()
        store_rows = [q.get() for _ in procs]
        for p in procs:
            p.join()

    def avg(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    mib = 2**20
    j_open, s_open = avg(json_rows, "open_s"), avg(store_rows, "open_s")
    j_mem = avg(json_rows, "rss") - avg(json_rows, "base_rss")
    s_mem = avg(store_rows, "rss") - avg(store_rows, "base_rss")
    print(f"\n{'per worker':<28}{'json.load (baseline)':>22}{'store':>14}{'ratio':>10}")
    print(f"{'open time (s)':<28}{j_open:>22.3f}{s_open:>14.4f}{j_open / max(s_open, 1e-9):>9.0f}x")
    print(f"{'added RSS (MiB)':<28}{j_mem / mib:>22.0f}{s_mem / mib:>14.1f}{j_mem / max(s_mem, 1):>9.0f}x")
    print(f"{'PSS (MiB)':<28}{avg(json_rows, 'pss') / mib:>22.0f}{avg(store_rows, 'pss') / mib:>14.1f}")
    print(f"{'look-up (ms/video)':<28}{'(dict: ~0)':>22}{avg(store_rows, 'lookup_ms'):>14.3f}")
    print(f"{args.workers} store workers ran at once; json.load measured in {args.json_workers} workers one at a time "
          f"({args.workers} at once would need ~{args.workers * j_mem / 2**30:.1f} GiB)")


if __name__ == "__main__":
    sys.exit(run_main(main))
