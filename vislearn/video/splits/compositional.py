"""The compositional split: templates into groups 1/2, nouns into sets A/B; train = 1A + 2B,
validation = 1B + 2A, so every verb and noun is seen in training but no verb-noun pair of the
validation set is.

Pipeline (`make_compositional`), each step counted in the report:
1. pool the train (+ validation) records; a record without placeholders, a template missing from
   the labels file or an id present twice is an error;
2. with `boxes`, drop videos without box annotations (`no_boxes`);
3. canonicalise nouns (`splits.nouns`); a video with a placeholder that has no canonical form is
   dropped (`empty_noun`);
4. apply the multi-placeholder rule (which nouns of a video count):
     all-same-set (default)  all nouns count; a video is kept only if they all fall in one set
                             (`nouns_in_both_sets`), so no pair of any noun leaks;
     first-noun              only the first placeholder counts and decides the side; the other
                             nouns are ignored (weaker: a second noun's pair may appear on both sides);
     single-noun             only videos with one distinct noun are kept (`multi_noun`), like the
                             official one-object split;
5. optionally drop videos with a noun seen in fewer than `min_noun_videos` videos (`rare_noun`);
6. search the grouping (`splits.search`: maximise P*classes + kept videos - lambda*|train-val|);
7. clean up: validation videos with a noun never seen in training (`noun_unseen_in_training`),
   classes left without `min_per_side` videos on each side (`class_without_both_sides`).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json
from vislearn.video.data.ssv2 import Record, load_labels, template_to_class

from . import io
from .nouns import NounMap, build_noun_map
from .search import DROP_NAMES, Problem, search

RULES = ("all-same-set", "first-noun", "single-noun")
OBJECTIVE_FORMULA = ("J = P * classes_with_both_sides + videos_kept - balance * sum_c |train_c - validation_c| "
                     "- noun_balance * |nouns_A - nouns_B|, P = videos_searched + 1 (a class outweighs any number "
                     "of videos)")


@dataclass
class Options:
    rule: str = "all-same-set"
    min_per_side: int = 1
    min_noun_videos: int = 1
    balance: float = 0.5
    noun_balance: float = 0.0
    restarts: int = 4
    max_sweeps: int = 50
    merge_heads: int = 0
    seed: int = 0

    def check(self) -> None:
        if self.rule not in RULES:
            raise UserError(f"unknown multi-placeholder rule {self.rule!r}; expected one of {', '.join(RULES)}")
        if self.min_per_side < 1:
            raise UserError("--min-per-side must be at least 1")
        if self.min_noun_videos < 1:
            raise UserError("--min-noun-videos must be at least 1")
        if self.balance < 0 or self.noun_balance < 0:
            raise UserError("--balance and --noun-balance must be >= 0")
        if self.restarts < 1:
            raise UserError("--restarts must be at least 1")


@dataclass
class Pool:
    labels: dict[str, int]
    records: list[Record]
    sources: dict[str, str] = field(default_factory=dict)

    def class_name(self, record: Record) -> str:
        return template_to_class(record.template)


def read_pool_records(path: str | os.PathLike, labels: dict[str, int], labels_path: str | os.PathLike
                      ) -> list[Record]:
    """Read a train/validation list; each record needs a template from the labels file and placeholders."""
    out = []
    for i, rec in enumerate(io.parse_records(read_json(path), path)):
        if rec.template is None:
            raise UserError(f"{path}: record {i} (id {rec.id}): missing field 'template' (a test-set list has no labels)")
        name = template_to_class(rec.template)
        if name not in labels:
            raise UserError(f"{path}: record {i} (id {rec.id}): template {rec.template!r} is not in the labels "
                            f"file {labels_path}")
        if not rec.placeholders:
            raise UserError(f"{path}: record {i} (id {rec.id}): no placeholders (template {rec.template!r} "
                            f"names {rec.template.count('[')} object(s)); every video needs its nouns")
        slots = rec.template.count("[")
        if len(rec.placeholders) > slots:  # the extra nouns would leak into objectsA/objectsB
            raise UserError(f"{path}: record {i} (id {rec.id}): {len(rec.placeholders)} placeholders "
                            f"{rec.placeholders} for template {rec.template!r}, which names {slots} object(s)")
        out.append(rec)
    return out


def load_pool(labels_path: str | os.PathLike, train_path: str | os.PathLike,
              val_path: str | os.PathLike | None = None) -> Pool:
    """Read labels and record lists; every record must have a known template and placeholders."""
    labels = load_labels(labels_path)
    records: list[Record] = []
    seen: dict[str, str] = {}
    sources = {"labels": str(labels_path), "train": str(train_path)}
    paths = [train_path] + ([val_path] if val_path is not None else [])
    if val_path is not None:
        sources["validation"] = str(val_path)
    for path in paths:
        for rec in read_pool_records(path, labels, labels_path):
            if rec.id in seen:
                raise UserError(f"{path}: video id {rec.id} is also in {seen[rec.id]}")
            seen[rec.id] = str(path)
            records.append(rec)
    if not records:
        raise UserError(f"{train_path}: no records to split")
    return Pool(labels=labels, records=records, sources=sources)


@dataclass
class Result:
    labels: dict[str, int]
    train: list[Record]
    validation: list[Record]
    objects_a: list[str]
    objects_b: list[str]
    noun_map: dict[str, str]
    report: dict


def _examples(ids: list[str], n: int = 5) -> list[str]:
    return ids[:n]


def make_compositional(pool: Pool, options: Options | None = None, boxes=None, boxes_source: str | None = None,
                       progress=None) -> Result:
    options = options or Options()
    options.check()
    t0 = time.perf_counter()
    records = pool.records
    dropped: dict[str, list[str]] = {}

    def drop(reason: str, ids: list[str]) -> None:
        if ids:
            dropped.setdefault(reason, []).extend(ids)

    # 2. boxes
    if boxes is not None:
        with_boxes = [r for r in records if r.id in boxes]
        drop("no_boxes", [r.id for r in records if r.id not in boxes])
        if not with_boxes:
            raise UserError(f"empty result: none of the {len(records)} videos has box annotations in "
                            f"{boxes_source or 'the box file'} (are the ids from the same data set?)")
        records = with_boxes

    # 3. nouns
    raw_counts = Counter(p for r in records for p in r.placeholders)
    nmap: NounMap = build_noun_map(raw_counts, merge_heads=options.merge_heads)
    mapping = nmap.mapping
    valid_nouns: list[list[str]] = []  # every video with canonical nouns, before the rule: for the rule comparison
    video_nouns: list[list[str]] = []
    kept_records: list[Record] = []
    empty_ids, multi_ids = [], []
    for r in records:
        canon = list(dict.fromkeys(mapping[p] for p in r.placeholders))
        if "" in canon:
            empty_ids.append(r.id)
            continue
        valid_nouns.append(canon)
        if options.rule == "first-noun":
            nouns = canon[:1]
        elif options.rule == "single-noun":
            if len(canon) > 1:
                multi_ids.append(r.id)
                continue
            nouns = canon
        else:
            nouns = canon
        kept_records.append(r)
        video_nouns.append(nouns)
    drop("empty_noun", empty_ids)
    drop("multi_noun", multi_ids)

    # 5. rare nouns
    if options.min_noun_videos > 1:
        freq = Counter(n for nouns in video_nouns for n in nouns)
        keep = [all(freq[n] >= options.min_noun_videos for n in nouns) for nouns in video_nouns]
        drop("rare_noun", [r.id for r, k in zip(kept_records, keep) if not k])
        kept_records = [r for r, k in zip(kept_records, keep) if k]
        video_nouns = [v for v, k in zip(video_nouns, keep) if k]
    if not kept_records:
        raise UserError(f"empty result: all {len(pool.records)} videos were dropped before the search "
                        f"({_reason_text(dropped)})")

    # 6. problem arrays
    class_order = sorted(pool.labels, key=lambda c: pool.labels[c])
    class_pos = {c: i for i, c in enumerate(class_order)}
    noun_names = sorted({n for nouns in video_nouns for n in nouns})
    noun_pos = {n: i for i, n in enumerate(noun_names)}
    cls = np.fromiter((class_pos[pool.class_name(r)] for r in kept_records), dtype=np.int64, count=len(kept_records))
    lens = np.fromiter((len(v) for v in video_nouns), dtype=np.int64, count=len(video_nouns))
    vn_ptr = np.zeros(len(video_nouns) + 1, dtype=np.int64)
    np.cumsum(lens, out=vn_ptr[1:])
    vn_idx = np.fromiter((noun_pos[n] for v in video_nouns for n in v), dtype=np.int64, count=int(lens.sum()))
    prob = Problem(cls=cls, vn_ptr=vn_ptr, vn_idx=vn_idx, n_classes=len(class_order), n_nouns=len(noun_names))
    t_prep = time.perf_counter() - t0
    best, outcomes = search(prob, options.min_per_side, options.balance, options.noun_balance, options.restarts,
                            options.max_sweeps, options.seed, progress=progress)
    t_search = time.perf_counter() - t0 - t_prep

    # 7. result
    for code, name in DROP_NAMES.items():
        drop(name, [kept_records[i].id for i in np.flatnonzero(best.reason == code).tolist()])
    kept = best.kept
    train = [r for r, k, st in zip(kept_records, kept.tolist(), best.status.tolist()) if k and st == 1]
    validation = [r for r, k, st in zip(kept_records, kept.tolist(), best.status.tolist()) if k and st == 2]
    if not train or not validation:
        hints = ([] if options.rule == "first-noun" else ["--rule first-noun"]) + \
                ([] if options.merge_heads else ["--merge-heads 2"]) + ["more data"]
        raise UserError(f"empty result: no class has videos on both sides after the search "
                        f"({len(pool.records)} videos in, {_reason_text(dropped)}); try {', '.join(hints)}")
    kept_classes = [c for c in class_order if best.classes_ok[class_pos[c]]]
    per_class = Counter((pool.class_name(r), 0) for r in train) + Counter((pool.class_name(r), 1) for r in validation)
    class_gap = int(sum(abs(per_class[(c, 0)] - per_class[(c, 1)]) for c in kept_classes))
    labels_out = {c: i for i, c in enumerate(kept_classes)}
    noun_videos = Counter(n for nouns, k in zip(video_nouns, kept.tolist()) if k for n in nouns)
    objects = {0: [], 1: []}
    for n in sorted(noun_videos, key=lambda n: (-noun_videos[n], n)):
        objects[int(best.s[noun_pos[n]])].append(n)
    out_raw = sorted({p for r in train + validation for p in r.placeholders})
    noun_map_out = {raw: nmap[raw] for raw in out_raw}

    # the other multi-placeholder rules under the same assignment
    set_of = {n: int(best.s[noun_pos[n]]) for n in noun_names}
    mixed = unknown = multi = 0
    for canon in valid_nouns:
        if len(canon) > 1:
            multi += 1
            sets = {set_of.get(n) for n in canon}
            if None in sets:
                unknown += 1
            elif len(sets) > 1:
                mixed += 1
    rules = {
        "chosen": options.rule,
        "all-same-set": {"drops": mixed, "note": "videos whose nouns span both sets under the chosen assignment"
                         + (f" ({unknown} more have a noun the chosen rule left without a set)" if unknown else "")},
        "first-noun": {"drops": 0, "note": "the first placeholder decides; other nouns are not constrained"},
        "single-noun": {"drops": multi, "note": "videos with more than one distinct noun"},
    }

    classes_in = Counter(pool.class_name(r) for r in pool.records)
    dropped_classes = {c: ("no videos" if classes_in[c] == 0 else "no videos on both sides")
                       for c in class_order if c not in labels_out}
    group_of = {c: int(best.g[class_pos[c]]) + 1 for c in kept_classes}
    n_tr, n_va = len(train), len(validation)
    report = {
        "kind": "compositional",
        "sources": dict(pool.sources, **({"boxes": boxes_source} if boxes_source else {})),
        "options": asdict(options),
        "counts": {
            "input_videos": len(pool.records),
            "searched_videos": prob.n_videos,
            "train": n_tr,
            "validation": n_va,
            "kept": n_tr + n_va,
            "classes_in_labels": len(class_order),
            "classes": len(labels_out),
            "nouns_A": len(objects[0]),
            "nouns_B": len(objects[1]),
            "templates_group1": sum(1 for g in group_of.values() if g == 1),
            "templates_group2": sum(1 for g in group_of.values() if g == 2),
        },
        "dropped": {k: len(v) for k, v in sorted(dropped.items())},
        "dropped_examples": {k: _examples(v) for k, v in sorted(dropped.items())},
        "dropped_classes": dropped_classes,
        "multi_placeholder_rules": rules,
        "objective": {
            "formula": OBJECTIVE_FORMULA,
            "value": best.objective,
            "classes_with_both_sides": len(labels_out),
            "videos_kept": n_tr + n_va,
            "imbalance": abs(n_tr - n_va),
            "class_imbalance": class_gap,
            "balance": options.balance,
            "noun_imbalance": abs(len(objects[0]) - len(objects[1])),
            "noun_balance": options.noun_balance,
            "P": prob.n_videos + 1,
            "search_value": best.search_objective,
            "restarts": [{"seed": [options.seed, i], "value": o.objective, "sweeps": o.sweeps, "flips": o.flips}
                         for i, o in enumerate(outcomes)],
        },
        "groups": {"1": [c for c in kept_classes if group_of[c] == 1], "2": [c for c in kept_classes if group_of[c] == 2]},
        "nouns": nmap.summary(),
        "seconds": {"prepare": round(t_prep, 3), "search": round(t_search, 3)},
    }
    return Result(labels=labels_out, train=train, validation=validation, objects_a=objects[0], objects_b=objects[1],
                  noun_map=noun_map_out, report=report)


def _reason_text(dropped: dict[str, list[str]]) -> str:
    if not dropped:
        return "nothing dropped"
    return ", ".join(f"{k}: {len(v)}" for k, v in sorted(dropped.items()))


def write_result(out: str | os.PathLike, result: Result) -> None:
    io.write_compositional_folder(out, result.labels, result.train, result.validation, result.objects_a,
                                  result.objects_b, result.noun_map, result.report)


def summary(result: Result, out: str | os.PathLike | None = None) -> str:
    r = result.report
    c, o = r["counts"], r["objective"]
    lines = [
        f"compositional split{' -> ' + str(out) if out else ''}",
        f"  videos: {c['input_videos']} in, {c['train']} train + {c['validation']} validation = {c['kept']} kept",
        f"  classes: {c['classes']} of {c['classes_in_labels']} (groups 1/2: {c['templates_group1']}/{c['templates_group2']})",
        f"  nouns: {c['nouns_A']} in A, {c['nouns_B']} in B "
        f"({r['nouns']['raw_forms']} raw forms -> {r['nouns']['canonical_forms']} canonical)",
        "  dropped: " + (", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "none"),
        f"  rule {r['multi_placeholder_rules']['chosen']}; drops under each rule: "
        + ", ".join(f"{k} {v['drops']}" for k, v in r["multi_placeholder_rules"].items() if k != "chosen"),
        f"  objective {o['value']:.2f} = {o['P']}*{o['classes_with_both_sides']} + {o['videos_kept']} - "
        f"{o['balance']}*{o['class_imbalance']} - {o['noun_balance']}*{o['noun_imbalance']} "
        f"(best of {len(o['restarts'])} starts)",
    ]
    if r["dropped_classes"]:
        names = list(r["dropped_classes"])
        lines.append(f"  classes dropped: {len(names)} ({'; '.join(names[:3])}{'; ...' if len(names) > 3 else ''})")
    return "\n".join(lines)
