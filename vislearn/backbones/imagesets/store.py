"""The image set in memory, on disk and back: `make_set` (render the splits, optionally over processes),
`write_folder` (ImageFolder layout + imageset.json), `write_npz` (one array file), their readers, and the
loader every trainer calls, `load_images(source, split, size=None, seed=0)`.

On disk:
  OUT/imageset.json                          {generator, version, seed, size, classes, per_class, counts, ...}
  OUT/{train,val,test}/{class_name}/{index:06d}.png   (class names with underscores for spaces; `index` is the
                                                       image's index in its split: image (seed, split, index))
  OUT.npz   images uint8 [N,H,W,3], labels int64 [N], split uint8 [N] (0 train, 1 val, 2 test),
            classes str [C], meta (imageset.json's content as a JSON string); the splits in that order.
Labels: in an .npz and in memory, the index into `classes` (the set's order, `nouns.CLASS_NAMES`); read
from a folder, the index into the sorted class folder names (as torchvision's ImageFolder).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_folder, atomic_path
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import MANIFEST

from .nouns import CLASS_NAMES
from .render import SPLITS, VERSION, render_images

if TYPE_CHECKING:
    import torch

DEFAULT_PER_CLASS = (250, 50, 100)  # train, val, test images per class
DEFAULT_SIZE, MIN_SIZE, MAX_SIZE = 64, 32, 256
META = "imageset.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
CHUNK = 256  # images per job of a worker process


@dataclass
class LabelledImages:
    images: "torch.Tensor"  # uint8 [N,3,H,W]
    labels: "torch.Tensor"  # int64 [N]
    classes: tuple[str, ...]


def folder_name(class_name: str) -> str:
    return class_name.replace(" ", "_")


def check_size(size: int) -> int:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"size must be {MIN_SIZE} to {MAX_SIZE} pixels for the rendered set, got {size}")
    return size


def metadata(seed: int, size: int, per_class: tuple[int, int, int]) -> dict:
    return {"generator": "vislearn.backbones.imagesets", "version": VERSION, "seed": seed, "size": size,
            "classes": list(CLASS_NAMES), "per_class": dict(zip(SPLITS, per_class)),
            "counts": {s: n * len(CLASS_NAMES) for s, n in zip(SPLITS, per_class)},
            "labels": "image i of a split has label i % len(classes)"}


def _render_chunk(job: tuple[int, str, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, split, start, stop, size = job
    return render_images(seed, split, range(start, stop), size)


def make_set(seed: int = 0, size: int = DEFAULT_SIZE, per_class: tuple[int, int, int] = DEFAULT_PER_CLASS,
             workers: int = 1, progress: Callable | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Render every split: {split: (images uint8 [N,size,size,3], labels int64 [N])}. The same for any `workers`.
    `progress(iterable, total, what)` wraps the work (a progress bar)."""
    check_size(size)
    jobs = [(seed, split, a, min(a + CHUNK, n * len(CLASS_NAMES)), size)
            for split, n in zip(SPLITS, per_class) for a in range(0, n * len(CLASS_NAMES), CHUNK)]
    if workers > 1 and len(jobs) > 1:
        # spawn: safe whatever the parent has imported (torch's threads do not survive fork)
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            it = pool.imap(_render_chunk, jobs)
            parts = list(progress(it, len(jobs), "rendering") if progress else it)
    else:
        it = map(_render_chunk, jobs)
        parts = list(progress(it, len(jobs), "rendering") if progress else it)
    out = {}
    for split in SPLITS:
        mine = [p for job, p in zip(jobs, parts) if job[1] == split]
        out[split] = (np.concatenate([p[0] for p in mine]) if mine else np.zeros((0, size, size, 3), np.uint8),
                      np.concatenate([p[1] for p in mine]) if mine else np.zeros(0, np.int64))
    return out


# ----------------------------------------------------------------------------------------- writers
def check_folder_out(out: Path) -> None:
    """The output folder must be new, empty, or an earlier image set, which the new one replaces whole: so it
    may hold only what this command writes (imageset.json, train/ val/ test/ of class folders of .png)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder (--format npz writes one file)")
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / META).is_file():
        raise UserError(f"{out}: folder is not empty and holds no {META}; choose a new --out folder")
    strangers = []
    for top in sorted(os.listdir(out)):
        p = out / top
        if top in (META, MANIFEST) or (top.startswith(".") and ".tmp." in top):
            continue
        if top not in SPLITS or not p.is_dir() or p.is_symlink():
            strangers.append(top)
            continue
        for cls in sorted(os.listdir(p)):
            q = p / cls
            if not q.is_dir() or q.is_symlink():
                strangers.append(f"{top}/{cls}")
                continue
            strangers += [f"{top}/{cls}/{f}" for f in sorted(os.listdir(q)) if not f.endswith(".png")
                          or not (q / f).is_file() or (q / f).is_symlink()]
    if strangers:
        more = f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        raise UserError(f"{out}: holds {', '.join(strangers[:3])}{more}, which `vislearn backbones imageset` did not "
                        f"write; it replaces an image set whole, so it is kept: move those or choose another --out")


def write_folder(out: str | os.PathLike, arrays: dict, meta: dict, progress: Callable | None = None) -> None:
    """The ImageFolder layout, built beside `out` and swapped in at the end (an earlier image set is replaced
    whole; anything else in `out` is refused before the work, `check_folder_out`)."""
    from PIL import Image

    out = Path(out)
    check_folder_out(out)
    with atomic_folder(out, replace=True) as tmp:
        for split, (images, labels) in arrays.items():
            for name in meta["classes"]:
                (tmp / split / folder_name(name)).mkdir(parents=True)
            items = range(len(images))
            for i in (progress(items, len(items), f"writing {split}") if progress else items):
                path = tmp / split / folder_name(meta["classes"][int(labels[i])]) / f"{i:06d}.png"
                Image.fromarray(images[i]).save(path, compress_level=1)
        write_json(tmp / META, meta, indent=1)


def write_npz(path: str | os.PathLike, arrays: dict, meta: dict) -> None:
    """One .npz file (module docstring), written under a temporary name and renamed at the end. Not compressed:
    the sensor noise leaves zlib ~12% to gain, for seconds of work on every write and read."""
    images = np.concatenate([arrays[s][0] for s in SPLITS])
    labels = np.concatenate([arrays[s][1] for s in SPLITS]).astype(np.int64)
    split = np.concatenate([np.full(len(arrays[s][1]), k, np.uint8) for k, s in enumerate(SPLITS)])
    with atomic_path(path) as tmp:
        np.savez(tmp, images=images, labels=labels, split=split, classes=np.array(meta["classes"]),
             meta=np.array(json.dumps(meta)))
