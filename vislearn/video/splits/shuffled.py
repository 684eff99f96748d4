"""The shuffled control: the same videos as a compositional split, split at random.

For every class, the pooled train + validation videos of that class are shuffled (seeded) and the
first n_train(class) go to training, where n_train(class) is the class's training count in the
source split. So sizes, classes and per-class counts are identical to the source; only the
verb-noun pairing differs. The gap between a model's accuracy on the two is the cost of
composition.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json
from vislearn.video.data.ssv2 import Record, class_names, load_labels, template_to_class

from . import io


def make_shuffled(labels: dict[str, int], train: list[Record], validation: list[Record], seed: int = 0,
                  source: str = "") -> tuple[list[Record], list[Record], dict]:
    def cls(r: Record) -> str:
        if r.template is None:
            raise UserError(f"{source}: video {r.id} has no template")
        name = template_to_class(r.template)
        if name not in labels:
            raise UserError(f"{source}: video {r.id}: template {r.template!r} is not in labels.json")
        return name

    ids = [r.id for r in train] + [r.id for r in validation]
    if len(set(ids)) != len(ids):
        raise UserError(f"{source}: some video ids are in both train and validation; validate the folder first")
    by_class: dict[str, list[Record]] = defaultdict(list)
    n_train: dict[str, int] = defaultdict(int)
    for r in train:
        by_class[cls(r)].append(r)
        n_train[cls(r)] += 1
    for r in validation:
        by_class[cls(r)].append(r)
    rng = np.random.default_rng(seed)
    order = {r.id: i for i, r in enumerate(train + validation)}
    new_train: list[Record] = []
    new_val: list[Record] = []
    moved = 0
    train_ids = {r.id for r in train}
    for name in class_names(labels):
        pool = by_class.get(name, [])
        perm = rng.permutation(len(pool))
        k = n_train[name]
        for j, p in enumerate(perm.tolist()):
            (new_train if j < k else new_val).append(pool[p])
            moved += (j < k) != (pool[p].id in train_ids)
    new_train.sort(key=lambda r: order[r.id])
    new_val.sort(key=lambda r: order[r.id])
    report = {
        "kind": "shuffled",
        "counts": {"train": len(new_train), "validation": len(new_val), "classes": len(labels),
                   "videos_that_changed_side": moved},
        "method": "per class, the pooled videos are shuffled and the source's per-class training count goes to training",
    }
    return new_train, new_val, report


def run_shuffled(src: str | os.PathLike, out: str | os.PathLike, seed: int = 0) -> dict:
    folder = io.scan_folder(src)
    missing = [name for name, p in (("labels.json", folder.labels), ("train.json", folder.train),
                                    ("validation.json", folder.validation)) if p is None]
    if missing:
        raise UserError(f"{folder.path}: not a compositional split folder (missing {', '.join(missing)})")
    labels = load_labels(folder.labels)
    class_names(labels)  # indices must be 0..K-1
    train = io.read_records(folder.train)
    validation = io.read_records(folder.validation)
    new_train, new_val, report = make_shuffled(labels, train, validation, seed, str(folder.path))
    report["source"] = str(folder.path)
    report["source_kind"] = folder.kind()
    report["seed"] = seed
    if Path(out).resolve() == folder.path.resolve():
        raise UserError(f"{out}: the output folder must differ from the source folder")
    io.write_compositional_folder(out, labels, new_train, new_val)
    if folder.noun_map is not None:  # keeps `stats`/`validate` noun checks consistent with the source
        io.write_json(Path(out) / io.NOUN_MAP, read_json(folder.noun_map), indent=0)
    io.write_report(out, report)
    return report


def summary(report: dict, out) -> str:
    c = report["counts"]
    return (f"shuffled control -> {out}\n"
            f"  from {report['source']} (seed {report['seed']}): {c['train']} train + {c['validation']} validation, "
            f"{c['classes']} classes, same per-class counts; {c['videos_that_changed_side']} videos changed side")
