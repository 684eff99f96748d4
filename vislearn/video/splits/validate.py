"""Protocol checks on a split folder; whatever files are present are checked, the rest is skipped.

Compositional / shuffled folder (labels.json, train.json, validation.json, objectsA/B.json):
  labels               indices are integers 0..K-1 without repeats
  records-labels       every record has a template whose class is in labels.json
  classes-both-sides   every class of labels.json has training and validation videos
  disjoint-ids         no video id twice in a list, none in both lists
  pairs                no (verb, noun) pair in both training and validation (compositional only;
                       the shuffled control shares pairs by design). Nouns are canonicalised with
                       the folder's noun_map.json when present, else with `splits.nouns`. Which
                       nouns of a video count follows the split's rule (report.json) or --pairs.
  val-verbs-seen       every verb (class) of validation is in training
  val-nouns-seen       every noun of validation is in training (a warning for the shuffled control)
  objects-disjoint     objectsA and objectsB share no noun (spellings that canonicalise to the same
                       noun, like "matchbox"/"match box" in the release, are a warning)
  grouping             with objects lists and records: every class trains on one set and validates
                       on the other (train = 1A + 2B, validation = 1B + 2A); nouns in neither list
                       are a warning
Few-shot folder (base_labels.json, finetune_labels.json, base_*_set.json, finetune_<k>shot_*.json):
  base-labels / finetune-labels, base-novel-disjoint, base-sets (templates, ids),
  <k>-shot[draw d]: templates in finetune labels, exactly k videos per novel class, ids disjoint
  from the fine-tuning validation set and from the base sets.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json
from vislearn.video.data.ssv2 import Record, template_to_class

from . import io
from .nouns import build_noun_map, canonical_form

PASS, FAIL, SKIP, WARN = "PASS", "FAIL", "SKIP", "WARN"
MAX_LISTED = 10


@dataclass
class Check:
    name: str
    status: str
    detail: str


def _listing(items: list[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = "; ".join(items[:MAX_LISTED])
    return shown + (f"; ... ({total - MAX_LISTED} more)" if total > MAX_LISTED else "")


def check_labels(path: Path, name: str = "labels") -> tuple[Check, dict[str, int] | None]:
    raw = io.read_labels_raw(path)
    if not raw:
        return Check(name, FAIL, f"{path.name}: no classes"), None
    labels: dict[str, int] = {}
    problems = []
    seen: dict[int, str] = {}
    for cname, value in raw.items():
        try:
            idx = int(value)
        except (TypeError, ValueError):
            problems.append(f"{cname!r} has index {value!r}")
            continue
        if idx in seen:
            problems.append(f"index {idx} used by {seen[idx]!r} and {cname!r}")
        seen[idx] = cname
        labels[template_to_class(cname)] = idx
    if problems:
        return Check(name, FAIL, f"{path.name}: " + _listing(problems)), None
    if sorted(seen) != list(range(len(seen))):
        missing = sorted(set(range(len(seen))) - set(seen))
        return Check(name, FAIL, f"{path.name}: indices are not 0..{len(seen) - 1} (missing {missing[:5]})"), labels
    return Check(name, PASS, f"{path.name}: {len(labels)} classes, indices 0..{len(labels) - 1}"), labels


def _class_of(r: Record) -> str | None:
    return None if r.template is None else template_to_class(r.template)


def _template_check(name: str, parts: dict[str, list[Record]], labels: dict[str, int] | None,
                    cls: Callable[[Record], str | None],
                    labels_name: str) -> Check:
    if labels is None:
        return Check(name, SKIP, f"{labels_name} absent or unreadable")
    bad = []
    for part, recs in parts.items():
        for r in recs:
            c = cls(r)
            if c is None:
                bad.append(f"{part} id {r.id}: no template")
            elif c not in labels:
                bad.append(f"{part} id {r.id}: {r.template!r} not in {labels_name}")
    if bad:
        return Check(name, FAIL, _listing(bad))
    return Check(name, PASS, f"{sum(len(v) for v in parts.values())} records, all templates in {labels_name}")


def _disjoint_check(name: str, parts: dict[str, list[Record]]) -> Check:
    problems = []
    owner: dict[str, str] = {}
    for part, recs in parts.items():
        counts = Counter(r.id for r in recs)
        dups = [i for i, n in counts.items() if n > 1]
        if dups:
            problems.append(f"{len(dups)} ids twice in {part} (e.g. {', '.join(dups[:5])})")
        for i in counts:
            if i in owner:
                problems.append(f"id {i} in {owner[i]} and {part}")
            else:
                owner[i] = part
    if problems:
        return Check(name, FAIL, _listing(problems))
    return Check(name, PASS, f"{len(owner)} distinct ids in {', '.join(parts)}")


def _noun_function(folder: io.SplitFolder, records: list[Record], extra: list[str]):
    if folder.noun_map is not None:
        data = read_json(folder.noun_map)
        if not isinstance(data, dict):
            raise UserError(f"{folder.noun_map}: expected a JSON object raw noun -> canonical noun")
        return lambda raw: data.get(raw) or canonical_form(raw), f"nouns via {folder.noun_map.name}"
    counts = Counter(p for r in records for p in r.placeholders)
    counts.update(extra)
    nmap = build_noun_map(counts)
    return nmap.__getitem__, "nouns via splits.nouns (no noun_map.json)"


def validate_compositional(folder: io.SplitFolder, pairs_mode: str | None = None) -> list[Check]:
    checks: list[Check] = []
    report = folder.read_report()
    kind = folder.kind()
    labels = None
    if folder.labels is not None:
        c, labels = check_labels(folder.labels)
        checks.append(c)
    else:
        checks.append(Check("labels", SKIP, "labels.json absent"))
    train = io.read_records(folder.train) if folder.train else None
    val = io.read_records(folder.validation) if folder.validation else None
    obj_a = io.read_nouns(folder.objects_a) if folder.objects_a else None
    obj_b = io.read_nouns(folder.objects_b) if folder.objects_b else None
    cls = _class_of
    have_both = train is not None and val is not None
    absent = ", ".join(n for n, x in (("train.json", train), ("validation.json", val)) if x is None)
    if train is None and val is None:
        for name in ("records-labels", "classes-both-sides", "disjoint-ids", "pairs", "val-verbs-seen",
                     "val-nouns-seen"):
            checks.append(Check(name, SKIP, "train.json and validation.json absent"))
    else:
        parts = {n: x for n, x in (("train", train), ("validation", val)) if x is not None}
        checks.append(_template_check("records-labels", parts, labels, cls, "labels.json"))
        if labels is not None and have_both:
            tr_cls = Counter(cls(r) for r in train)
            va_cls = Counter(cls(r) for r in val)
            missing = [f"{c!r} ({tr_cls[c]} train, {va_cls[c]} validation)" for c in labels
                       if tr_cls[c] == 0 or va_cls[c] == 0]
            checks.append(Check("classes-both-sides", FAIL if missing else PASS,
                                _listing(missing) if missing else f"all {len(labels)} classes on both sides"))
        else:
            checks.append(Check("classes-both-sides", SKIP, absent or "labels.json absent"))
        checks.append(_disjoint_check("disjoint-ids", parts))
    # nouns
    if have_both:
        noun_of, noun_source = _noun_function(folder, train + val, (obj_a or []) + (obj_b or []))
        rule = (report.get("options") or {}).get("rule")
        mode = pairs_mode or ("first" if rule == "first-noun" else "all")

        def nouns(r: Record) -> list[str]:
            ns = list(dict.fromkeys(noun_of(p) for p in r.placeholders))
            return ns[:1] if mode == "first" else ns

        tr_pairs: Counter = Counter()
        va_pairs: Counter = Counter()
        tr_nouns: set[str] = set()
        va_nouns: Counter = Counter()
        for r in train:
            for n in nouns(r):
                tr_pairs[(cls(r), n)] += 1
                tr_nouns.add(n)
        for r in val:
            for n in nouns(r):
                va_pairs[(cls(r), n)] += 1
                va_nouns[n] += 1
        shared = sorted(set(tr_pairs) & set(va_pairs), key=lambda p: (-(tr_pairs[p] + va_pairs[p]), p))
        if kind == "shuffled":
            checks.append(Check("pairs", SKIP, f"shuffled control: {len(shared)} verb-noun pairs shared by design"))
        elif shared:
            items = [f"{c!r} + {n!r} ({tr_pairs[(c, n)]} train, {va_pairs[(c, n)]} validation)" for c, n in shared]
            checks.append(Check("pairs", FAIL, f"{len(shared)} verb-noun pairs in both sides: " + _listing(items)))
        else:
            checks.append(Check("pairs", PASS, f"{len(va_pairs)} validation pairs, none in training "
                                               f"({'first noun' if mode == 'first' else 'all nouns'}; {noun_source})"))
        tr_c = {cls(r) for r in train}
        unseen_verbs = sorted({cls(r) for r in val} - tr_c, key=str)
        checks.append(Check("val-verbs-seen", FAIL if unseen_verbs else PASS,
                            _listing([repr(v) for v in unseen_verbs]) if unseen_verbs
                            else f"{len({cls(r) for r in val})} validation verbs, all in training"))
        unseen = sorted((n for n in va_nouns if n not in tr_nouns), key=lambda n: (-va_nouns[n], n))
        status = (WARN if kind == "shuffled" else FAIL) if unseen else PASS
        checks.append(Check("val-nouns-seen", status,
                            f"{len(unseen)} validation nouns never in training: "
                            + _listing([f"{n!r} ({va_nouns[n]} videos)" for n in unseen]) if unseen
                            else f"{len(va_nouns)} validation nouns, all in training"))
    elif train is not None or val is not None:
        for name in ("pairs", "val-verbs-seen", "val-nouns-seen"):
            checks.append(Check(name, SKIP, f"{absent} absent"))
    # objects
    if obj_a is not None and obj_b is not None:
        both = sorted(set(obj_a) & set(obj_b))
        if both:
            checks.append(Check("objects-disjoint", FAIL, f"{len(both)} nouns in objectsA and objectsB: "
                                + _listing([repr(n) for n in both])))
        else:
            nmap = build_noun_map(Counter(obj_a + obj_b))
            ca: dict[str, list[str]] = defaultdict(list)
            cb: dict[str, list[str]] = defaultdict(list)
            for n in obj_a:
                ca[nmap[n]].append(n)
            for n in obj_b:
                cb[nmap[n]].append(n)
            clash = sorted(set(ca) & set(cb))
            if clash:
                items = [f"{'/'.join(ca[k])} (A) ~ {'/'.join(cb[k])} (B)" for k in clash]
                checks.append(Check("objects-disjoint", WARN, f"{len(obj_a)}/{len(obj_b)} nouns, no shared string, "
                                    f"but {len(clash)} canonicalise to the same noun: " + _listing(items)))
            else:
                checks.append(Check("objects-disjoint", PASS, f"{len(obj_a)} nouns in A, {len(obj_b)} in B, disjoint"))
        if have_both and kind != "shuffled":
            checks.extend(_grouping_check(train, val, obj_a, obj_b, noun_of, nouns, cls))
        else:
            checks.append(Check("grouping", SKIP, "shuffled control" if kind == "shuffled"
                                else f"{absent} absent"))
    else:
        present = [n for n, x in (("objectsA.json", obj_a), ("objectsB.json", obj_b)) if x is not None]
        why = (f"only {present[0]} present" if present else "objectsA.json/objectsB.json absent")
        checks.append(Check("objects-disjoint", SKIP if kind == "shuffled" or not present else FAIL, why))
        checks.append(Check("grouping", SKIP, why))
    return checks


def _grouping_check(train, val, obj_a, obj_b, noun_of, nouns, cls) -> list[Check]:
    set_of: dict[str, str] = {}
    for name, objs in (("A", obj_a), ("B", obj_b)):
        for n in objs:
            set_of.setdefault(n, name)
            set_of.setdefault(canonical_form(n), name)
    unmapped: Counter = Counter()
    sides: dict[str, dict[str, Counter]] = defaultdict(lambda: {"train": Counter(), "validation": Counter()})
    for part, recs in (("train", train), ("validation", val)):
        for r in recs:
            for n in nouns(r):
                s = set_of.get(n)
                if s is None:
                    unmapped[n] += 1
                else:
                    sides[cls(r)][part][s] += 1
    bad = []
    for c, sd in sorted(sides.items(), key=lambda kv: str(kv[0])):
        tr, va = set(sd["train"]), set(sd["validation"])
        if len(tr) > 1 or len(va) > 1 or (tr and va and tr == va):
            bad.append(f"{c!r}: train nouns in {'/'.join(sorted(tr)) or '-'} {dict(sd['train'])}, "
                       f"validation nouns in {'/'.join(sorted(va)) or '-'} {dict(sd['validation'])}")
    out = [Check("grouping", FAIL if bad else PASS,
                 f"{len(bad)} classes break train = 1A + 2B, validation = 1B + 2A: " + _listing(bad) if bad
                 else f"{len(sides)} classes train on one noun set and validate on the other")]
    if unmapped:
        items = [f"{n!r} ({k})" for n, k in unmapped.most_common()]
        out.append(Check("grouping-nouns", WARN, f"{len(unmapped)} nouns in neither objects list: " + _listing(items)))
    return out


def validate_fewshot(folder: io.SplitFolder) -> list[Check]:
    checks: list[Check] = []
    base = novel = None
    if folder.base_labels is not None:
        c, base = check_labels(folder.base_labels, "base-labels")
        checks.append(c)
    else:
        checks.append(Check("base-labels", SKIP, "base_labels.json absent"))
    if folder.finetune_labels is not None:
        c, novel = check_labels(folder.finetune_labels, "finetune-labels")
        checks.append(c)
    else:
        checks.append(Check("finetune-labels", SKIP, "finetune_labels.json absent"))
    if base is not None and novel is not None:
        shared = sorted(set(base) & set(novel))
        checks.append(Check("base-novel-disjoint", FAIL if shared else PASS,
                            f"{len(shared)} classes are base and novel: " + _listing([repr(s) for s in shared])
                            if shared else f"{len(base)} base and {len(novel)} novel classes, disjoint"))
    else:
        checks.append(Check("base-novel-disjoint", SKIP, "needs both label files"))
    cls = _class_of
    base_parts = {}
    if folder.base_train is not None:
        base_parts["base training"] = io.read_records(folder.base_train)
    if folder.base_val is not None:
        base_parts["base validation"] = io.read_records(folder.base_val)
    if base_parts:
        checks.append(_template_check("base-sets", base_parts, base, cls, "base_labels.json"))
        checks.append(_disjoint_check("base-ids", base_parts))
    else:
        checks.append(Check("base-sets", SKIP, "base_training_set.json/base_validation_set.json absent"))
    base_ids = {r.id for recs in base_parts.values() for r in recs}
    top_val = {k: f.val for k, f in folder.shots.get(0, {}).items()}
    val_cache: dict[Path, list[Record]] = {}

    def load(path: Path) -> list[Record]:
        if path not in val_cache:
            val_cache[path] = io.read_records(path)
        return val_cache[path]

    if not folder.shots:
        checks.append(Check("k-shot", SKIP, "no finetune_<k>shot_*.json files"))
    for d, per_k in folder.shots.items():
        for k, files in per_k.items():
            tag = f"{k}-shot" + (f" draw {d}" if d else "")
            parts = {}
            if files.train is not None:
                parts["fine-tuning training"] = load(files.train)
            val_path = files.val or top_val.get(k)
            if val_path is not None:
                parts["fine-tuning validation"] = load(val_path)
            checks.append(_template_check(f"{tag} templates", parts, novel, cls, "finetune_labels.json"))
            if files.train is not None:
                if novel is None:
                    checks.append(Check(f"{tag} per class", SKIP, "finetune_labels.json absent"))
                else:
                    counts = Counter(cls(r) for r in parts["fine-tuning training"])
                    off = [f"{c!r}: {counts[c]}" for c in novel if counts[c] != k]
                    extra = [f"{c!r}: {n} (not a novel class)" for c, n in counts.items() if c not in novel]
                    bad = off + extra
                    checks.append(Check(f"{tag} per class", FAIL if bad else PASS,
                                        f"{len(bad)} classes without exactly {k} videos: " + _listing(bad) if bad
                                        else f"{len(novel)} novel classes x {k} = {len(parts['fine-tuning training'])} "
                                             f"videos ({files.train.name})"))
            ids_parts = dict(parts)
            checks.append(_disjoint_check(f"{tag} ids", ids_parts) if len(ids_parts) > 1
                          else Check(f"{tag} ids", SKIP, "needs the fine-tuning training and validation sets"))
            if base_ids and parts:
                leak = sorted({r.id for recs in parts.values() for r in recs} & base_ids)
                checks.append(Check(f"{tag} vs base", FAIL if leak else PASS,
                                    f"{len(leak)} ids also in the base sets: " + _listing(leak) if leak
                                    else "no id shared with the base sets"))
    return checks


def validate(path: str | os.PathLike, pairs_mode: str | None = None) -> tuple[list[Check], str]:
    folder = io.scan_folder(path)
    checks: list[Check] = []
    kind = folder.kind()
    if folder.is_compositional:
        checks += validate_compositional(folder, pairs_mode)
    if folder.is_fewshot:
        checks += validate_fewshot(folder)
    return checks, kind


def format_table(checks: list[Check], width: int = 110) -> str:
    name_w = max([len("check")] + [len(c.name) for c in checks]) + 2
    lines = [f"{'check':<{name_w}}{'status':<8}detail", "-" * min(width, name_w + 8 + 40)]
    for c in checks:
        lines.append(f"{c.name:<{name_w}}{c.status:<8}{c.detail}")
    counts = Counter(c.status for c in checks)
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[WARN]} warnings, {counts[SKIP]} skipped")
    return "\n".join(lines)


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
