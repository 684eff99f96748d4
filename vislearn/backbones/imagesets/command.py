"""`vislearn backbones imageset`: render the image set for classification (24 object classes) to disk.

Writes either the ImageFolder layout (--format folder, the default unless --out ends in .npz):
  OUT/{train,val,test}/{class_name}/{index:06d}.png     (spaces in class names become underscores)
  OUT/imageset.json                                     version, seed, size, classes, counts per split
or one array file (--format npz): OUT.npz with images uint8 [N,H,W,3], labels int64 [N], split uint8 [N]
(0 train, 1 val, 2 test), classes, meta (imageset.json as a JSON string).

Image i of a split is drawn from its own generator seeded with (seed, split, i): the same --seed gives the same
pixels whatever --workers is. Its class is i % 24. `vislearn.backbones.imagesets.load_images(OUT, split)`
reads both layouts back (`--show OUT` prints what it reads). A folder is built beside OUT and takes its place
at the end (an earlier image set there is replaced whole; a folder holding anything else is refused); an .npz
appears only once complete, and an existing one is replaced only when vislearn wrote it or with --overwrite.
"""
from __future__ import annotations

import argparse
import sys
import time

from vislearn.common.cli import Parser, command, positive_int

SIZES = "32 to 256"


def _size(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, {SIZES}, got {text!r}") from None
    if not 32 <= v <= 256:
        raise argparse.ArgumentTypeError(f"must be {SIZES} pixels, got {v}")
    return v


def _per_class(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        counts = tuple(int(p) for p in parts)
    except ValueError:
        counts = ()
    if len(counts) != 3 or min(counts) < 0 or max(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected three whole numbers TRAIN,VAL,TEST (0 or more, not all 0), "
                                         f"got {text!r}")
    return counts  # type: ignore[return-value]


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn backbones imageset", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", help="output folder (--format folder) or .npz file (--format npz)")
    what.add_argument("--show", metavar="SOURCE",
                      help="write nothing: read an image source as trainers do (`load_images`: objects, digits, a "
                           "folder SPLIT/CLASS/IMAGE or an .npz) and print its splits, classes and image size "
                           "(--size resizes, --seed picks the rendered set)")
    p.add_argument("--format", choices=["folder", "npz"], default=None,
                   help="folder: ImageFolder layout + imageset.json; npz: one array file "
                        "(default: npz when --out ends in .npz, else folder)")
    p.add_argument("--size", type=_size, default=None,
                   help=f"image side in pixels, {SIZES} (default 64; with --show: the source's own size)")
    p.add_argument("--per-class", type=_per_class, default=(250, 50, 100), metavar="TRAIN,VAL,TEST",
                   help="images per class in each split (default 250,50,100: 9,600 images)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, 0 or more (default 0)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes (default 1); the images are the same for any number")
    p.add_argument("--overwrite", action="store_true",
                   help="--format npz: replace an existing file that vislearn did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _show(args: argparse.Namespace) -> int:
    from .load import load_images
    from .render import SPLITS

    from pathlib import Path

    splits = SPLITS
    if Path(args.show).is_dir() and args.show not in ("objects", "digits"):  # a folder: the splits it has
        splits = [s for s in SPLITS if (Path(args.show) / s).is_dir()] or ["train"]  # none: load_images says so
    rows = []
    for split in splits:
        data = load_images(args.show, split, size=args.size, seed=args.seed)
        shape = "x".join(map(str, data.images.shape[1:])) if len(data.images) else "-"
        rows.append((split, len(data.labels), shape, data.labels.bincount(minlength=len(data.classes)).tolist()))
    print(f"{args.show}: {len(data.classes)} classes: {', '.join(data.classes)}")
    for split, n, shape, counts in rows:
        print(f"  {split:<5} {n:>7} images  {shape:<10} per class {min(counts)}-{max(counts)}")
    return 0


def _work(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from vislearn.common.outputs import check_writable, claim_file

    from .store import check_folder_out, make_set, metadata, write_folder, write_npz

    if args.show is not None:
        return _show(args)
    args.size = args.size or 64
    fmt = args.format or ("npz" if args.out.endswith(".npz") else "folder")
    out = Path(args.out)
    if fmt == "npz":
        if out.suffix != ".npz":
            out = out.with_name(out.name + ".npz")
        claim_file(out, overwrite=args.overwrite, flag="--out")
    else:
        check_folder_out(out)
        check_writable(out.parent, "--out")  # the set is built beside --out: refused before rendering
    def progress(it, total, what):
        if args.quiet:
            return it
        from tqdm import tqdm

        return tqdm(it, total=total, desc=what, file=sys.stderr, leave=False)

    t0 = time.perf_counter()
    workers = min(args.workers, os.cpu_count() or 1)
    arrays = make_set(args.seed, args.size, args.per_class, workers=workers, progress=progress)
    rendered = time.perf_counter() - t0
    meta = metadata(args.seed, args.size, args.per_class)
    if fmt == "npz":
        write_npz(out, arrays, meta)
    else:
        write_folder(out, arrays, meta, progress)
    total = sum(len(labels) for _, labels in arrays.values())
    counts = ", ".join(f"{len(labels)} {split}" for split, (_, labels) in arrays.items())
    print(f"wrote {out}: {total} images of {len(meta['classes'])} classes ({counts}) at {args.size}x{args.size}, "
          f"version {meta['version']}, seed {args.seed}; rendered in {rendered:.1f}s ({total / rendered:.0f} images/s "
          f"with {workers} process{'es' if workers > 1 else ''}), {time.perf_counter() - t0:.1f}s in all")
    return 0


main = command(build_parser, _work)

if __name__ == "__main__":
    sys.exit(main())
