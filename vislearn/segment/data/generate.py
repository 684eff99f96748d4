"""`vislearn segment generate-data`: render a segmentation data set with whole and part masks, in SA-1B's format.

Writes
  OUT/{train,val,test}/sa_<id>.jpg + sa_<id>.json   SA-1B's per-image pair (`vislearn.segment.data.sa1b`);
                                                    image <id> of a split is the renderer's image index id - 1
  OUT/dataset.json                                  generator, version, arguments, counts, complete or not

Image i of a split is drawn from its own generator seeded with (seed, split, i) (`vislearn.segment.data.render`):
the same --seed and --size give the same images and masks, however the run was split or resumed. Each image has
2-6 objects of 24 classes (often a hand), their exact visible masks, and masks of their parts (a mug's handle, a
bottle's cap, the hand's fingers...), with `category`, `level` ("whole" | "part") and `parent` (the whole's id).

Resumable: a killed run, started again with the same arguments, keeps every image it completed and renders the
rest; larger counts extend a data set, smaller ones trim it. A folder holding anything else (files and no
dataset.json, or a data set of another seed or size) is refused unless --overwrite (which re-renders everything
and never deletes a file vislearn did not write).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from vislearn.common.cli import Parser, command

KIND = "segment generate-data"
META = "dataset.json"
GENERATOR = "vislearn.segment.data"
DEFAULT_COUNTS = (2000, 200, 200)
MIN_SIZE, MAX_SIZE = 32, 1024
_FILE = re.compile(r"^sa_(\d+)\.(jpg|json)$")


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of images, 0 or more, got {text!r}")
    return v


def _size(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if not MIN_SIZE <= v <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be {MIN_SIZE} to {MAX_SIZE} pixels, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment generate-data", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (made if missing; a killed run continues there)")
    for split, n in zip(("train", "val", "test"), DEFAULT_COUNTS):
        p.add_argument(f"--{split}", type=_count, default=n, metavar="N", help=f"{split} images (default {n})")
    p.add_argument("--size", type=_size, default=256,
                   help=f"image side in pixels, {MIN_SIZE} to {MAX_SIZE} (default 256)")
    p.add_argument("--seed", type=_count, default=0, help="random seed, 0 or more (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that holds other files or a data set of other arguments "
                        "(its images are rendered again)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def metadata(args: argparse.Namespace, complete: bool) -> dict:
    from .render import VERSION

    counts = {"train": args.train, "val": args.val, "test": args.test}
    return {"generator": GENERATOR, "version": VERSION, "format": "SA-1B",
            "arguments": {"seed": args.seed, "size": args.size, **counts}, "counts": counts, "complete": complete}


def _same_set(old: dict, new: dict) -> list[str]:
    """What differs between an existing data set and the one asked for (seed, size, version)."""
    a, b = old.get("arguments") or {}, new["arguments"]
    diff = [f"{k} {a.get(k)!r} (asked {b[k]!r})" for k in ("seed", "size") if a.get(k) != b[k]]
    if old.get("version") != new["version"]:
        diff.append(f"renderer version {old.get('version')!r} (now {new['version']!r})")
    return diff


def _check_out(out: Path, meta: dict, overwrite: bool) -> bool:
    """Whether the images already in `out` can be kept (a resume). A folder holding other things is refused
    unless `overwrite` (then everything is rendered again)."""
    from vislearn.common.errors import UserError
    from vislearn.common.jsonio import read_json
    from vislearn.common.outputs import HIDDEN

    if not out.is_dir() or not [p for p in out.iterdir() if p.name not in HIDDEN]:
        return False
    if not (out / META).is_file():
        if overwrite:
            return False
        raise UserError(f"{out}: folder is not empty and holds no {META} (not a data set of `vislearn {KIND}`); "
                        f"choose a new --out, or pass --overwrite to write into it")
    try:
        old = read_json(out / META)
    except UserError:
        if overwrite:
            return False
        raise
    if not isinstance(old, dict) or old.get("generator") != GENERATOR:
        if overwrite:
            return False
        raise UserError(f"{out / META}: not written by `vislearn {KIND}`; choose a new --out, or pass --overwrite")
    diff = _same_set(old, meta)
    if diff and not overwrite:
        raise UserError(f"{out}: holds a data set with another {', '.join(diff)}; pass --overwrite to render it "
                        f"again, or choose another --out")
    return not diff


def _plan(folder: Path, n: int, keep: bool) -> tuple[list[int], list[str], list[Path]]:
    """For one split folder: the indices to render, the existing files they replace, and our files beyond `n`
    to remove (a smaller count). A file beyond `n` that vislearn did not write is refused."""
    from vislearn.common.errors import UserError
    from vislearn.common.outputs import ours

    have: dict[int, set[str]] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _FILE.match(p.name)
            if m:
                have.setdefault(int(m.group(1)), set()).add(m.group(2))
    todo, replaced, extra = [], [], []
    for image_id in range(1, n + 1):
        exts = have.get(image_id, set())
        whole = keep and exts == {"jpg", "json"} and all(ours(folder / f"sa_{image_id}.{e}") for e in exts)
        if not whole:
            todo.append(image_id - 1)
            replaced += [f"{folder.name}/sa_{image_id}.{e}" for e in sorted(exts)]
    for image_id in sorted(i for i in have if i > n):
        for e in sorted(have[image_id]):
            p = folder / f"sa_{image_id}.{e}"
            if not ours(p):
                raise UserError(f"{p}: beyond the {n} images asked for, and not written by vislearn; move it away")
            extra.append(p)
    return todo, replaced, extra


_TMP = re.compile(r"^\.(sa_\d+)\.(?:\d+\.)?[a-z0-9_]{8}\.tmp\.(jpg|json)$")


def _remove_leftovers(folder: Path) -> None:
    """The temporary files a killed run left in a split folder (`atomic_path`'s, of processes that are gone)."""
    from vislearn.common.files import remove_stale_files

    for name in {m.groups() for m in map(_TMP.match, (p.name for p in folder.iterdir())) if m}:
        remove_stale_files(folder / f"{name[0]}.{name[1]}")


def scene_annotations(scene, image_id: int) -> list[dict]:
    """The SA-1B annotations of a rendered scene; ids are image_id * 1000 + the instance's number (unique in
    the split), `parent` likewise."""
    from .sa1b import annotation_record

    base = image_id * 1000
    if len(scene.instances) >= 1000:
        raise ValueError("more than 999 instances in one image")
    return [annotation_record(inst.mask, base + inst.id, category=inst.category, level=inst.level,
                              parent=None if inst.parent is None else base + inst.parent)
            for inst in scene.instances]


def _work(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vislearn.common.jsonio import write_json
    from vislearn.common.outputs import claim_folder

    from .render import SPLITS, render_scene
    from .sa1b import write_image

    out = Path(args.out)
    meta = metadata(args, complete=False)
    claim = claim_folder(out, [META], kind=KIND, lock=True, overwrite=args.overwrite)
    keep = _check_out(out, meta, args.overwrite)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    plans = {s: _plan(out / s, counts[s], keep) for s in SPLITS}
    claim.check([r for s in SPLITS for r in plans[s][1]], overwrite=args.overwrite, adopt=True)
    write_json(out / META, meta, indent=1)
    for s in SPLITS:
        (out / s).mkdir(exist_ok=True)
        _remove_leftovers(out / s)
        for p in plans[s][2]:
            p.unlink()
    jobs = [(s, i) for s in SPLITS for i in plans[s][0]]
    kept = sum(counts.values()) - len(jobs)
    t0 = time.perf_counter()
    for split, index in tqdm(jobs, desc="rendering", unit="image", file=sys.stderr, leave=False,
                             disable=args.quiet or not jobs):
        scene = render_scene(args.seed, split, index, args.size)
        write_image(out / split, index + 1, scene.image, scene_annotations(scene, index + 1))
    took = time.perf_counter() - t0
    write_json(out / META, metadata(args, complete=True), indent=1)
    total = sum(counts.values())
    rate = f" ({len(jobs) / took:.0f} images/s)" if jobs and took > 0 else ""
    trimmed = sum(len(plans[s][2]) for s in SPLITS) // 2
    print(f"wrote {out}: {total} images ({', '.join(f'{counts[s]} {s}' for s in SPLITS)}) at "
          f"{args.size}x{args.size}, seed {args.seed}; rendered {len(jobs)} in {took:.1f}s{rate}"
          + (f", kept {kept} from an earlier run" if kept else "")
          + (f", removed {trimmed} beyond the counts" if trimmed else ""), file=sys.stdout)
    return 0


main = command(build_parser, _work)

if __name__ == "__main__":
    sys.exit(main())
