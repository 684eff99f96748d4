"""Speed of the synthetic data set generator: rendering alone, VP9 encoding alone (of the same
frames), rendering + encoding, and the whole `generate` with 1 and K worker processes.

    python bench/bench_synthetic.py [--videos 20] [--width 320 --height 240] [--workers 2]

Prints a table of videos/s and frames/s (figures depend on the machine; nothing is asserted).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


from vislearn.video.data.synthetic.generate import FPS, generate, make_spec, render_spec  # noqa: E402
from vislearn.video.data.video_writer import write_video  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=20)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    specs = [make_spec(args.seed, i, args.width, args.height) for i in range(args.videos)]
    n_frames = sum(s.frames for s in specs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        rendered = [render_spec(s)[0] for s in specs]
        rows.append(("render only", time.perf_counter() - t0, time.process_time() - c0))

        t0, c0 = time.perf_counter(), time.process_time()
        for s, r in zip(specs, rendered):
            write_video(tmp / f"enc_{s.id}.webm", r.frames, fps=FPS)
        rows.append(("encode only (same frames)", time.perf_counter() - t0, time.process_time() - c0))
        del rendered

        t0, c0 = time.perf_counter(), time.process_time()
        for s in specs:
            write_video(tmp / f"both_{s.id}.webm", render_spec(s)[0].frames, fps=FPS)
        rows.append(("render + encode", time.perf_counter() - t0, time.process_time() - c0))

        for workers in sorted({1, args.workers}):
            t0 = time.perf_counter()
            generate(tmp / f"set_{workers}", args.videos, seed=args.seed, width=args.width, height=args.height,
                     workers=workers)
            rows.append((f"generate, {workers} worker{'s' if workers > 1 else ''} (+JSON)",
                         time.perf_counter() - t0, None))

    print(f"synthetic generator: {args.videos} videos, {n_frames} frames, {args.width}x{args.height}, "
          f"{os.cpu_count()} CPUs")
    load = f"; load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"(wall-clock seconds; CPU ms/video counts this process only, so it holds on a busy machine{load})")
    print(f"{'stage':<34} {'seconds':>8} {'videos/s':>9} {'frames/s':>9} {'CPU ms/video':>13}")
    for name, sec, cpu in rows:
        cpu_txt = f"{1000 * cpu / args.videos:>13.0f}" if cpu is not None else f"{'-':>13}"
        print(f"{name:<34} {sec:>8.2f} {args.videos / sec:>9.2f} {n_frames / sec:>9.1f} {cpu_txt}")
    cpu = {name: c for name, _, c in rows}
    gen = [sec for name, sec, _ in rows if name.startswith("generate")][-1]
    print(f"-> 100 videos: about {100 * gen / args.videos:.0f} s measured with {args.workers} worker(s), "
          f"{100 * cpu['render + encode'] / args.videos / max(args.workers, 1):.0f} s of CPU per worker; "
          f"rendering is {cpu['render only'] / cpu['render + encode']:.0%} of render+encode CPU")


if __name__ == "__main__":
    sys.exit(run_main(main))
