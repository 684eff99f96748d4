"""The few-shot split: base classes (full training and validation sets) and novel classes
(k-shot fine-tuning sets), as in Something-Else (88 base, 86 novel, 5- and 10-shot).

- Base/novel classes: `--base-labels FILE` fixes the base classes (e.g. the official
  base_labels.json); otherwise the novel classes are drawn at random (seeded) among the classes
  that can be novel (>= max(shots) training videos and >= 1 validation video); the rest are base.
  `--base-classes` defaults to `default_base_classes`: the paper's 88 of SSv2's 174 classes, else
  half the classes (as `vislearn video table` makes the synthetic set's).
- base_training_set / base_validation_set: the base classes' SSv2 training / validation videos.
- finetune_<k>shot_training: k training videos per novel class, drawn at random (seeded); within a
  draw the sets are nested (the 5 shots are the first 5 of the 10 shots).
- finetune_<k>shot_validation: all SSv2 validation videos of the novel classes (the same for every
  k and every draw, so the draws differ only in their fine-tuning examples and their spread gives
  confidence intervals).
- `--draws K` writes K independent draws: draw 0 at the top of the folder (the official layout),
  draws 1..K-1 as draws/draw_<d>/finetune_<k>shot_training.json.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.video.data.ssv2 import Record, load_labels, template_to_class

from . import io
from .compositional import read_pool_records


@dataclass
class FewShotResult:
    base_labels: dict[str, int]
    finetune_labels: dict[str, int]
    base_train: list[Record]
    base_val: list[Record]
    finetune_val: list[Record]
    shots: dict[int, dict[int, list[Record]]] = field(default_factory=dict)  # draw -> k -> records
    report: dict = field(default_factory=dict)


SSV2_CLASSES, SSV2_BASE_CLASSES = 174, 88  # Something-Else's few-shot split of real SSv2


def default_base_classes(num_classes: int) -> int:
    """The default number of base classes: 88 with SSv2's 174 classes (the paper's split), else half."""
    return SSV2_BASE_CLASSES if num_classes == SSV2_CLASSES else num_classes // 2


def make_fewshot(labels: dict[str, int], train: list[Record], validation: list[Record], base_classes: int | None = None,
                 shots: tuple[int, ...] = (5, 10), draws: int = 1, seed: int = 0,
                 base_names: list[str] | None = None, base_source: str = "--base-labels") -> FewShotResult:
    shots = tuple(sorted(set(int(k) for k in shots)))
    if not shots or shots[0] < 1:
        raise UserError("--shots must be positive integers")
    if draws < 1:
        raise UserError("--draws must be at least 1")
    order = sorted(labels, key=lambda c: labels[c])
    def cls(r: Record) -> str:
        return template_to_class(r.template)

    ids = {}
    for part, recs in (("train", train), ("validation", validation)):
        for r in recs:
            if r.id in ids:
                raise UserError(f"video id {r.id} is in both the {ids[r.id]} and the {part} list")
            ids[r.id] = part
    tr_by: dict[str, list[Record]] = defaultdict(list)
    va_by: dict[str, list[Record]] = defaultdict(list)
    for r in train:
        tr_by[cls(r)].append(r)
    for r in validation:
        va_by[cls(r)].append(r)
    need = max(shots)

    def eligible(c: str) -> bool:
        return len(tr_by[c]) >= need and len(va_by[c]) >= 1

    if base_names is not None:
        base_set = {template_to_class(b) for b in base_names}
        unknown = sorted(base_set - set(labels))
        if unknown:
            raise UserError(f"{base_source}: class {unknown[0]!r} is not in the labels file"
                            + (f" ({len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        novel = [c for c in order if c not in base_set]
        bad = [c for c in novel if not eligible(c)]
        if bad:
            c = bad[0]
            raise UserError(f"novel class {c!r} has {len(tr_by[c])} training and {len(va_by[c])} validation videos; "
                            f"a novel class needs >= {need} training and >= 1 validation video"
                            + (f" ({len(bad) - 1} more such classes)" if len(bad) > 1 else ""))
        selection = f"base classes from {base_source}"
    else:
        if base_classes is None:
            base_classes = default_base_classes(len(order))
        if not 1 <= base_classes < len(order):
            raise UserError(f"--base-classes {base_classes}: the labels file has {len(order)} classes; "
                            f"need 1 <= base classes < {len(order)}")
        n_novel = len(order) - base_classes
        cands = [c for c in order if eligible(c)]
        if len(cands) < n_novel:
            raise UserError(f"only {len(cands)} classes have >= {need} training and >= 1 validation videos; "
                            f"{n_novel} novel classes are needed (lower --base-classes' complement or --shots)")
        rng = np.random.default_rng([seed, 0])
        picked = {cands[i] for i in rng.permutation(len(cands))[:n_novel].tolist()}
        novel = [c for c in order if c in picked]
        selection = f"novel classes drawn at random (seed {seed}) among the {len(cands)} eligible classes"
    novel_set = set(novel)
    base = [c for c in order if c not in novel_set]
    base_labels = {c: i for i, c in enumerate(base)}
    finetune_labels = {c: i for i, c in enumerate(novel)}
    base_train = [r for r in train if cls(r) not in novel_set]
    base_val = [r for r in validation if cls(r) not in novel_set]
    finetune_val = [r for r in validation if cls(r) in novel_set]
    pos = {r.id: i for i, r in enumerate(train)}
    drawn: dict[int, dict[int, list[Record]]] = {}
    for d in range(draws):
        rng = np.random.default_rng([seed, 1 + d])
        per_k: dict[int, list[Record]] = {k: [] for k in shots}
        for c in novel:
            vids = tr_by[c]
            perm = rng.permutation(len(vids))[:need].tolist()
            for k in shots:
                per_k[k].extend(vids[i] for i in perm[:k])
        drawn[d] = {k: sorted(v, key=lambda r: pos[r.id]) for k, v in per_k.items()}
    empty_base = [c for c in base if not tr_by[c]]
    report = {
        "kind": "fewshot",
        "selection": selection,
        "seed": seed,
        "shots": list(shots),
        "draws": draws,
        "counts": {
            "base_classes": len(base), "novel_classes": len(novel),
            "base_training_set": len(base_train), "base_validation_set": len(base_val),
            "finetune_validation": len(finetune_val),
            "finetune_training": {str(k): len(drawn[0][k]) for k in shots},
            "novel_videos_not_used": sum(len(tr_by[c]) for c in novel) - len(drawn[0][need]),
        },
        "base_classes_without_training_videos": empty_base,
        "base": base,
        "novel": novel,
    }
    return FewShotResult(base_labels, finetune_labels, base_train, base_val, finetune_val, drawn, report)


def write_fewshot(out: str | os.PathLike, result: FewShotResult) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.save_labels(out / io.BASE_LABELS, result.base_labels)
    io.save_labels(out / io.FINETUNE_LABELS, result.finetune_labels)
    io.save_records(out / io.BASE_TRAIN, result.base_train)
    io.save_records(out / io.BASE_VAL, result.base_val)
    for d, per_k in result.shots.items():
        folder = io.draw_dir(out, d)
        folder.mkdir(parents=True, exist_ok=True)
        for k, recs in per_k.items():
            io.save_records(folder / io.finetune_name(k, "train"), recs)
            if d == 0:
                io.save_records(folder / io.finetune_name(k, "val"), result.finetune_val)
    io.write_report(out, result.report)


def run_fewshot(labels_path, train_path, val_path, out, base_classes=None, shots=(5, 10), draws=1, seed=0,
                base_labels_path=None) -> FewShotResult:
    labels = load_labels(labels_path)
    train = read_pool_records(train_path, labels, labels_path)
    validation = read_pool_records(val_path, labels, labels_path)
    base_names = None
    if base_labels_path is not None:
        base_names = list(load_labels(base_labels_path))
    result = make_fewshot(labels, train, validation, base_classes, tuple(shots), draws, seed, base_names,
                          str(base_labels_path) if base_labels_path else "--base-labels")
    result.report["sources"] = {"labels": str(labels_path), "train": str(train_path), "validation": str(val_path),
                                **({"base_labels": str(base_labels_path)} if base_labels_path else {})}
    write_fewshot(out, result)
    return result


def summary(result: FewShotResult, out) -> str:
    c = result.report["counts"]
    shots = ", ".join(f"{k}-shot {n}" for k, n in c["finetune_training"].items())
    return (f"few-shot split -> {out}\n"
            f"  {c['base_classes']} base classes: {c['base_training_set']} training, {c['base_validation_set']} validation\n"
            f"  {c['novel_classes']} novel classes: fine-tuning {shots}; validation {c['finetune_validation']}\n"
            f"  {result.report['draws']} draw(s); {result.report['selection']}")
