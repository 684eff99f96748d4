"""`vislearn video synthetic`: render the synthetic Something-Else-style data set.

Writes, in the official formats:
  OUT/something-something-v2-labels.json, -train.json, -validation.json   SSv2 metadata
  OUT/annotations.json                                                   Something-Else boxes
  OUT/videos/<id>.webm                                                   VP9, 12 fps, 2-4 s
  OUT/synthetic.json                                   settings, version, per-video ground truth

The same --seed gives the same data set (byte-identical JSON, identical decoded frames) whatever
--workers is. Videos show a hand and one to three objects doing one of 18 SSv2 templates with
18 nouns. By default (--noun-bias ssv2) a template's nouns follow a fixed per-template affinity
with the strength of real SSv2's noun-verb bias (datasets/synthetic/bias.py says how it was fitted
to the real statistics); every noun still occurs with most verbs. --noun-bias none draws verb and
nouns independently and uniformly.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from vislearn.common.cli import Parser, positive_int, run_main




SIZE_RULE = "must be an even number of pixels from 96 to 4096 (VP9 yuv420p)"


def _size(text: str) -> int:
    """argparse type of --width / --height: the real rule, whatever is wrong with the value."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{SIZE_RULE}, got {text!r}") from None
    if v % 2 or v < 96 or v > 4096:
        raise argparse.ArgumentTypeError(f"{SIZE_RULE}, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video synthetic", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (new, empty, or an earlier synthetic set to replace: "
                                                 "the new set is built beside it and takes its place at the end)")
    p.add_argument("--videos", type=positive_int, required=True, help="number of videos to render")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--width", type=_size, default=320,
                   help="frame width in pixels, even, 96 to 4096 (default 320; SSv2 is ~427x240)")
    p.add_argument("--height", type=_size, default=240,
                   help="frame height in pixels, even, 96 to 4096 (default 240, as SSv2)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes (default 1); the output is the same for any number")
    p.add_argument("--noun-bias", choices=["ssv2", "none"], default="ssv2",
                   help="ssv2 (default): nouns drawn with the strength of SSv2's noun-verb bias; "
                        "none: independent of the verb, uniform")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        from pathlib import Path

        from vislearn.common.outputs import check_writable

        from .generate import dataset_stats, format_stats, generate

        check_writable(Path(args.out).parent, "--out")  # the set is built beside --out: refused before rendering

        progress = None
        if not args.quiet:
            from tqdm import tqdm

            def progress(it, total):
                return tqdm(it, total=total, desc="rendering", unit="video", file=sys.stderr, leave=False)

        t0 = time.perf_counter()
        generate(args.out, args.videos, seed=args.seed, width=args.width, height=args.height,
                 workers=min(args.workers, os.cpu_count() or 1) if args.workers > 1 else 1, progress=progress,
                 noun_bias=args.noun_bias)
        dt = time.perf_counter() - t0
        print(f"wrote {args.out}: {args.videos} videos in {dt:.1f}s ({args.videos / dt:.1f} videos/s)")
        print(format_stats(dataset_stats(args.out)))
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
