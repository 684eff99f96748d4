"""How fast the image set renders on one core (`vislearn.backbones.imagesets`): images/s at each size, once the
split's bank of tables is drawn (the steady rate) and with it (what a set of N images costs per image), and the
whole default set (9,600 images) through `make_set`, which the CLI and `load_images("objects")` use.

    nice .venv/bin/python bench/backbones/bench_imageset.py [--sizes 64 128] [--images 2000] [--full]
    .venv/bin/python bench/backbones/bench_imageset.py --sheet docs/imageset_objects.png   # the docs' contact sheet

One process, one thread (numpy's BLAS is not used by the renderer). Machine noise: take the best of --reps.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from vislearn.backbones.imagesets import DEFAULT_PER_CLASS, make_set, render_images  # noqa: E402
from vislearn.backbones.imagesets.render import background_bank  # noqa: E402


def contact_sheet(path: str, per_class: int = 4, size: int = 64, columns: int = 3) -> None:
    """The first `per_class` training images of every class (seed 0), `columns` classes per row, each under its
    name; a 256-colour PNG (the sensor noise makes a full-colour one ~1 MB)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from vislearn.backbones.imagesets import CLASS_NAMES

    C, label_h, gap = len(CLASS_NAMES), 14, 8
    rows = -(-C // columns)
    tile_w = per_class * size + (per_class - 1) * 2
    sheet = Image.new("RGB", (columns * tile_w + (columns - 1) * gap, rows * (size + label_h + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(CLASS_NAMES):
        images, _ = render_images(0, "train", [k + C * j for j in range(per_class)], size)
        x0, y0 = (k % columns) * (tile_w + gap), (k // columns) * (size + label_h + gap)
        draw.text((x0 + 1, y0 + 1), f"{k}: {name}", fill=(0, 0, 0))
        for j in range(per_class):
            sheet.paste(Image.fromarray(np.ascontiguousarray(images[j])), (x0 + j * (size + 2), y0 + label_h))
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path}: {C} classes x {per_class} images at {size}x{size}, {os.path.getsize(path) / 1e3:.0f} KB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--images", type=int, default=2000, help="images per measurement (default 2000)")
    p.add_argument("--reps", type=int, default=3, help="best of this many measurements (default 3)")
    p.add_argument("--full", action="store_true", help="also time the default set (9,600 images) at each size")
    p.add_argument("--sheet", metavar="PNG", help="write the contact sheet (4 images per class) and stop")
    args = p.parse_args()
    if args.sheet:
        return contact_sheet(args.sheet)
    print(f"{'size':>5} {'images/s steady':>16} {'bank (s)':>9} {'images/s with bank':>19}")
    for size in args.sizes:
        steady = 0.0
        for rep in range(args.reps):
            background_bank(0, "train", size)  # drawn once per (seed, split, size)
            t0 = time.perf_counter()
            render_images(0, "train", range(rep * args.images, (rep + 1) * args.images), size)
            steady = max(steady, args.images / (time.perf_counter() - t0))
        background_bank.cache_clear()
        t0 = time.perf_counter()
        background_bank(0, "train", size)
        bank = time.perf_counter() - t0
        print(f"{size:>5} {steady:>16.0f} {bank:>9.2f} {args.images / (args.images / steady + bank):>19.0f}")
        if args.full:
            background_bank.cache_clear()
            t0 = time.perf_counter()
            arrays = make_set(0, size, DEFAULT_PER_CLASS)
            n = sum(len(labels) for _, labels in arrays.values())
            dt = time.perf_counter() - t0
            print(f"      make_set: {n} images (3 splits) in {dt:.1f}s = {n / dt:.0f} images/s")


if __name__ == "__main__":
    main()
