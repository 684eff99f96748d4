"""Clip loading cost: 8-frame (TSN segments) and 16-frame (stride 2) clips from 4 s SSv2-like
webm videos (VP9, 12 fps) with decord, PyAV (forward decode, wanted frames kept) and JPEG frame
folders. Baseline, measured in the same run: decord decoding the whole video.

Each clip is timed as a dataset item pays it: open the video, read the clip, close.
    python bench/bench_clip_loading.py [--repeats 10] [--sizes 320x240 427x240]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av  # noqa: F401  before decord (see datasets.video): PyAV must encode VP9 here
import numpy as np


from vislearn.video.data.sampling import SegmentSampler, StridedClipSampler  # noqa: E402
from vislearn.common.video import extract_frames, open_video  # noqa: E402
from vislearn.video.data.video_writer import write_video  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def make_frames(num: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """A textured scene with a moving square: realistic enough for the codec to do real work."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(base, 8, 0), 8, 1)[:h, :w]
    out = np.empty((num, h, w, 3), np.uint8)
    for t in range(num):
        f = np.roll(base, shift=t * 2, axis=1).copy()
        x = int((w - 60) * t / max(1, num - 1))
        f[h // 3:h // 3 + 60, x:x + 60] = (220, 40, 40)
        out[t] = f
    return out


def time_ms(fn, repeats: int) -> tuple[float, float]:
    """(min, median) milliseconds; the min is the figure to trust on a shared, noisy machine."""
    fn()  # warm up (file cache, lazy imports)
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t)
    return min(times) * 1000, statistics.median(times) * 1000


def main(argv=None) -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10, help="clips timed per case (median reported)")
    ap.add_argument("--seconds", type=float, default=4.0, help="video length")
    ap.add_argument("--sizes", nargs="+", default=["320x240", "427x240"])
    args = ap.parse_args(argv)
    samplers = {"8 seg": SegmentSampler(8), "16x2": StridedClipSampler(16, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{args.seconds:g} s videos at 12 fps, {args.repeats} random training clips per case, ms per clip "
              f"(open + read), min and median; ratio = min / min of decord full decode")
        print(f"{'video':>8} {'clip':>7} {'reader':>7} {'min ms':>8} {'median':>8} {'ratio':>6}")
        for size in args.sizes:
            w, h = map(int, size.split("x"))
            n = int(round(args.seconds * 12))
            path = tmp / f"{size}.webm"
            write_video(path, make_frames(n, w, h))
            folder = tmp / size
            extract_frames(path, folder)

            def full(k=0):
                with open_video(path, backend="decord") as r:
                    r.read_all()

            def full_pyav(k=0):
                with open_video(path, backend="pyav") as r:
                    r.read_all()

            base, med = time_ms(full, args.repeats)
            print(f"{size:>8} {'all ' + str(n):>7} {'decord':>7} {base:8.1f} {med:8.1f} {1.0:6.2f}   (baseline: full decode)")
            ms, med = time_ms(full_pyav, args.repeats)
            print(f"{size:>8} {'all ' + str(n):>7} {'pyav':>7} {ms:8.1f} {med:8.1f} {ms / base:6.2f}")
            for cname, sampler in samplers.items():
                for reader, target, backend in (("decord", path, "decord"), ("pyav", path, "pyav"), ("jpeg", folder, "auto")):
                    def clip(k=0):
                        with open_video(target, backend=backend) as r:
                            r.get_frames(sampler.sample(len(r), np.random.default_rng(k)))

                    ms, med = time_ms(clip, args.repeats)
                    print(f"{size:>8} {cname:>7} {reader:>7} {ms:8.1f} {med:8.1f} {ms / base:6.2f}")


if __name__ == "__main__":
    sys.exit(run_main(main))
