"""Statistics of split folders and SSv2 metadata.

- A split folder (`stats`): class counts per side, nouns per set, what was dropped and why, a plot
  of the class distribution, and the noun-verb bias of each side. With `--out` (only: describing a
  folder never changes it) also writes `stats.json` (everything below), `class_counts.csv` (one row
  per class) and `class_distribution.png` (per-class training/validation counts, classes sorted by size).
- Any SSv2-format metadata, real or synthetic (`metadata_stats`: a folder with
  something-something-v2-{train,validation}.json, or one record-list file): the noun-verb bias
  (`noun_bias`), the three statistics the issue measured on real SSv2, next to the real figures.
  Writes nothing.
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_file, atomic_path
from vislearn.video.data.ssv2 import Record, template_to_class

from . import io
from .nouns import build_noun_map
from .validate import check_labels


def _class_counts(parts: dict[str, list[Record]]) -> dict[str, Counter]:
    out = {}
    for name, recs in parts.items():
        c: Counter = Counter()
        for r in recs:
            if r.template is None:
                continue
            c[template_to_class(r.template)] += 1
        out[name] = c
    return out


def _plot(path: Path, classes: list[str], counts: dict[str, Counter], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = list(counts)
    totals = np.array([sum(counts[s][c] for s in sides) for c in classes])
    order = np.argsort(-totals, kind="stable")
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(8.0, min(16.0, 0.08 * len(classes) + 4)), 4.5))
    bottom = np.zeros(len(classes))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for i, s in enumerate(sides):
        vals = np.array([counts[s][classes[j]] for j in order], dtype=float)
        ax.bar(x, vals, bottom=bottom, width=0.85, label=f"{s} ({int(vals.sum()):,})", color=colours[i % len(colours)])
        bottom += vals
    ax.set_xlabel(f"class (sorted by number of videos; {len(classes)} classes)")
    ax.set_ylabel("videos")
    ax.set_title(title)
    ax.set_xlim(-1, len(classes))
    if len(classes) <= 40:
        ax.set_xticks(x)
        ax.set_xticklabels([classes[j][:30] for j in order], rotation=90, fontsize=6)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def _table(classes: list[str], counts: dict[str, Counter], head: int = 8) -> list[str]:
    sides = list(counts)
    w = max([len("class")] + [min(60, len(c)) for c in classes]) + 2
    rows = sorted(classes, key=lambda c: (-sum(counts[s][c] for s in sides), c))
    lines = [f"  {'class':<{w}}" + "".join(f"{s:>16}" for s in sides)]
    shown = rows if len(rows) <= 2 * head else rows[:head] + [None] + rows[-head:]
    for c in shown:
        if c is None:
            lines.append(f"  {'...':<{w}}")
            continue
        lines.append(f"  {c[:60]:<{w}}" + "".join(f"{counts[s][c]:>16,}" for s in sides))
    return lines


def stats(path: str | os.PathLike, plot: bool = True, out: str | os.PathLike | None = None,
          min_noun_videos: int = 10) -> tuple[str, dict]:
    """Compute, print-ready text and data; files go to `out` only (None: nothing is written)."""
    folder = io.scan_folder(path)
    report = folder.read_report()
    kind = folder.kind()
    data: dict = {"folder": str(folder.path), "kind": kind}
    lines = [f"{kind} split: {folder.path}"]
    if kind == "fewshot":
        labels = {}
        for key, p in (("base", folder.base_labels), ("novel", folder.finetune_labels)):
            if p is not None:
                _, lab = check_labels(p)
                labels[key] = lab or {}
        parts = {}
        if folder.base_train:
            parts["base training"] = io.read_records(folder.base_train)
        if folder.base_val:
            parts["base validation"] = io.read_records(folder.base_val)
        for k, f in folder.shots.get(0, {}).items():
            if f.train:
                parts[f"{k}-shot training"] = io.read_records(f.train)
            if f.val:
                parts[f"{k}-shot validation"] = io.read_records(f.val)
        classes = sorted(set(labels.get("base", {})) | set(labels.get("novel", {})))
        lines.append(f"  classes: {len(labels.get('base', {}))} base, {len(labels.get('novel', {}))} novel")
        data["classes"] = {k: len(v) for k, v in labels.items()}
        data["draws"] = len(folder.shots)
    else:
        labels = {}
        if folder.labels is not None:
            _, lab = check_labels(folder.labels)
            labels = lab or {}
        parts = {}
        if folder.train:
            parts["train"] = io.read_records(folder.train)
        if folder.validation:
            parts["validation"] = io.read_records(folder.validation)
        classes = sorted(labels, key=lambda c: labels[c])
        lines.append(f"  classes: {len(classes)}")
        data["classes"] = len(classes)
        if folder.objects_a and folder.objects_b:
            a, b = io.read_nouns(folder.objects_a), io.read_nouns(folder.objects_b)
            lines.append(f"  nouns: {len(a)} in objectsA, {len(b)} in objectsB")
            data["nouns"] = {"A": len(a), "B": len(b)}
    counts = _class_counts(parts)
    for c in counts.values():
        classes += sorted(k for k in c if k not in set(classes))
    data["videos"] = {name: len(recs) for name, recs in parts.items()}
    data["per_class"] = {c: {s: counts[s][c] for s in counts} for c in classes}
    if parts:
        lines.append("  videos: " + ", ".join(f"{n} {len(r):,}" for n, r in parts.items()))
        for s, c in counts.items():
            vals = np.array([c[k] for k in classes if c[k] or s in ("train", "validation")])
            if len(vals):
                lines.append(f"  per class, {s}: min {vals.min()}, median {int(np.median(vals))}, max {vals.max()}, "
                             f"{int((vals == 0).sum())} classes with none")
        if "train" in counts and "validation" in counts:
            share = [counts["train"][c] / (counts["train"][c] + counts["validation"][c]) for c in classes
                     if counts["train"][c] + counts["validation"][c]]
            if share:
                lines.append(f"  training share per class: min {min(share):.2f}, median {float(np.median(share)):.2f}, "
                             f"max {max(share):.2f}")
        lines += _table(classes, counts)
    else:
        lines.append("  no record lists in this folder (labels only): no per-class counts")
    dropped = report.get("dropped")
    if dropped is not None:
        total = report.get("counts", {}).get("input_videos")
        lines.append(f"  dropped (report.json{'; ' + format(total, ',') + ' videos in' if total else ''}): "
                     + (", ".join(f"{k} {v:,}" for k, v in dropped.items()) or "nothing"))
        if report.get("dropped_classes"):
            lines.append(f"  classes dropped: {len(report['dropped_classes'])}")
        data["dropped"] = dropped
        data["dropped_classes"] = report.get("dropped_classes", {})
    elif folder.report is None:
        lines.append("  dropped: unknown (no report.json; not made by this tool)")
    bias = {name: noun_bias(recs, min_noun_videos) for name, recs in parts.items()
            if name in ("train", "validation", "base training", "base validation")}
    if bias:
        data["noun_bias"] = bias
        lines.append(format_noun_bias(bias))
    if "train" in parts and "validation" in parts:
        shortcut = noun_shortcut(parts["train"], parts["validation"])
        if shortcut:
            data["noun_shortcut"] = shortcut
            lines.append(f"  noun shortcut: the noun's most frequent training template is right on "
                         f"{100 * shortcut['accuracy']:.1f}% of the {shortcut['videos']:,} single-object validation "
                         f"videos (the most frequent training template alone: {100 * shortcut['majority_accuracy']:.1f}%)")
    if out is None:  # describing a folder never changes it (its record lists would gain a "stats" set)
        return "\n".join(lines), data
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if parts:
        with atomic_file(out / "class_counts.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class"] + list(counts))
            for c in classes:
                w.writerow([c] + [counts[s][c] for s in counts])
        if plot:
            _plot(out / "class_distribution.png", classes, counts, f"{kind} split: {folder.path.name}")
            lines.append(f"  plot -> {out / 'class_distribution.png'}")
    io.write_json(out / "stats.json", data, indent=2)
    return "\n".join(lines), data


# --------------------------------------------------------------------------- noun-verb bias
# The figures the issue measured on real SSv2 (validation records of single-object templates; the 41
# templates and the 95 nouns with >= 10 videos; 3,955 videos; nouns lower-cased, articles and a plural
# "s" stripped). `vislearn video splits stats` prints them beside what it measures.
SSV2_VALIDATION_BIAS = {
    "videos": 3955, "templates": 41, "nouns": 95,
    "noun_top_template_accuracy": 0.198, "noun_top_template_accuracy_shuffled": 0.097,
    "majority_template_accuracy": 0.054, "accuracy_gain": (0.198 - 0.097) / (1 - 0.097),
    "mutual_information_bits": 1.28, "mutual_information_shuffled_bits": 0.62, "template_entropy_bits": 5.10,
    "mutual_information_share": (1.28 - 0.62) / 5.10,
    "top3_noun_share_median": 0.33, "templates_per_noun_median": 11,
}
_PLACEHOLDER = re.compile(r"\[[^\]]*\]")


def single_object_pairs(records: list[Record]) -> list[tuple[str, str]]:
    """(template, canonical noun) of every record whose template has exactly one placeholder."""
    pairs = [(r.template, r.placeholders[0]) for r in records
             if r.template is not None and len(r.placeholders) == 1 and len(_PLACEHOLDER.findall(r.template)) == 1]
    noun_map = build_noun_map(Counter(p for _, p in pairs))
    return [(t, noun_map[p]) for t, p in pairs if noun_map[p]]


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _bias_figures(t: np.ndarray, n: np.ndarray, n_templates: int, n_nouns: int) -> dict:
    joint = np.zeros((n_templates, n_nouns))
    np.add.at(joint, (t, n), 1.0)
    per_template = joint.sum(1)
    used = per_template > 0
    top3 = np.sort(joint[used], axis=1)[:, ::-1][:, :3].sum(1) / per_template[used]
    h_t, h_n, h_tn = _entropy_bits(per_template), _entropy_bits(joint.sum(0)), _entropy_bits(joint.ravel())
    return {"accuracy": float(joint.max(0).sum() / len(t)), "mi": h_t + h_n - h_tn, "h_template": h_t,
            "top3": float(np.median(top3)), "templates_per_noun": float(np.median((joint > 0).sum(0)))}


def noun_bias(records: list[Record], min_noun_videos: int = 10, permutations: int = 20, seed: int = 0) -> dict:
    """How much the noun tells about the template, in the three figures of the issue (and of
    `SSV2_VALIDATION_BIAS`), over the single-object records whose noun has >= `min_noun_videos` videos:

    - noun_top_template_accuracy: predicting each video's template as its noun's most frequent template
      (in-sample), against the same with the nouns shuffled among the videos (the finite-sample
      baseline; mean of `permutations` seeded shuffles) and against the most frequent template alone;
      accuracy_gain = (accuracy - shuffled) / (1 - shuffled), the chance-corrected form;
    - mutual_information_share: (I(template; noun) - the same after shuffling) / H(template), plug-in
      estimates in bits: the share of the template's entropy the noun explains beyond chance;
    - top3_noun_share_median: per template, the share of its videos its 3 most frequent nouns cover
      (median over templates; also after shuffling), and templates_per_noun_median: with how many
      templates a noun occurs (median over the nouns).
    """
    pairs = single_object_pairs(records)
    counts = Counter(noun for _, noun in pairs)
    pairs = [(tpl, noun) for tpl, noun in pairs if counts[noun] >= min_noun_videos]
    templates = sorted({tpl for tpl, _ in pairs})
    nouns = sorted({noun for _, noun in pairs})
    out: dict = {"videos": len(pairs), "templates": len(templates), "nouns": len(nouns),
                 "min_noun_videos": min_noun_videos, "permutations": permutations}
    if len(templates) < 2 or len(nouns) < 2:
        return out
    t_index, n_index = {x: i for i, x in enumerate(templates)}, {x: i for i, x in enumerate(nouns)}
    t = np.array([t_index[x] for x, _ in pairs])
    n = np.array([n_index[x] for _, x in pairs])
    real = _bias_figures(t, n, len(templates), len(nouns))
    rng = np.random.default_rng(seed)
    shuffled = [_bias_figures(t, rng.permutation(n), len(templates), len(nouns)) for _ in range(permutations)]
    shuf = {k: float(np.mean([s[k] for s in shuffled])) for k in real}
    out.update({
        "noun_top_template_accuracy": real["accuracy"],
        "noun_top_template_accuracy_shuffled": shuf["accuracy"],
        "majority_template_accuracy": float(np.bincount(t).max() / len(t)),
        "accuracy_gain": (real["accuracy"] - shuf["accuracy"]) / (1 - shuf["accuracy"]),
        "mutual_information_bits": real["mi"],
        "mutual_information_shuffled_bits": shuf["mi"],
        "template_entropy_bits": real["h_template"],
        "mutual_information_share": (real["mi"] - shuf["mi"]) / real["h_template"],
        "top3_noun_share_median": real["top3"],
        "top3_noun_share_median_shuffled": shuf["top3"],
        "templates_per_noun_median": real["templates_per_noun"],
    })
    return out


def noun_shortcut(train: list[Record], validation: list[Record]) -> dict:
    """The shortcut an appearance model can learn, measured across the sides of a split: each
    single-object validation video's template predicted as the most frequent training template of its
    noun (unseen nouns: the most frequent training template). High on the shuffled control, near or
    below chance on a compositional split, whose validation pairs never occur in training."""
    tr, va = single_object_pairs(train), single_object_pairs(validation)
    if not tr or not va:
        return {}
    by_noun: dict[str, Counter] = {}
    for tpl, noun in tr:
        by_noun.setdefault(noun, Counter())[tpl] += 1
    overall = Counter(tpl for tpl, _ in tr).most_common(1)[0][0]
    guess = {noun: c.most_common(1)[0][0] for noun, c in by_noun.items()}
    return {"videos": len(va), "accuracy": sum(guess.get(n, overall) == t for t, n in va) / len(va),
            "majority_accuracy": sum(t == overall for t, _ in va) / len(va)}


def format_noun_bias(figures: dict[str, dict], reference: dict | None = SSV2_VALIDATION_BIAS) -> str:
    """A table: one column per record set (e.g. train, validation), plus the real SSv2 reference."""
    return format_rows(*noun_bias_rows(figures, reference))


def noun_bias_rows(figures: dict[str, dict], reference: dict | None = SSV2_VALIDATION_BIAS
                   ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of `format_noun_bias` (also the HTML report's table)."""
    cols = dict(figures)
    if reference is not None:
        cols["real SSv2 validation"] = reference

    def pct(key, key2=None):
        def f(d):
            if key not in d:
                return "-"
            return f"{100 * d[key]:.1f}%" + (f" ({100 * d[key2]:.1f}%)" if key2 and key2 in d else "")
        return f

    def bits(d):
        if "mutual_information_bits" not in d:
            return "-"
        return (f"{d['mutual_information_bits']:.2f} ({d['mutual_information_shuffled_bits']:.2f}) "
                f"of {d['template_entropy_bits']:.2f}")

    def used(d):
        return f"{d.get('videos', 0):,} / {d.get('templates', 0)} / {d.get('nouns', 0)}"

    def per_noun(d):
        return "-" if "templates_per_noun_median" not in d else f"{d['templates_per_noun_median']:g} of {d['templates']}"

    rows = [("videos / templates / nouns", used),
            ("noun -> its top template (shuffled)", pct("noun_top_template_accuracy",
                                                        "noun_top_template_accuracy_shuffled")),
            ("  gain beyond shuffled, of its error", pct("accuracy_gain")),
            ("most frequent template alone", pct("majority_template_accuracy")),
            ("I(template; noun) bits (shuffled) of H", bits),
            ("  share of H beyond shuffled", pct("mutual_information_share")),
            ("template's top-3 nouns, median (shuffled)", pct("top3_noun_share_median", "top3_noun_share_median_shuffled")),
            ("templates per noun, median", per_noun)]
    return (["noun-verb bias (single-object templates)"] + list(cols),
            [[name] + [f(d) for d in cols.values()] for name, f in rows])


def metadata_stats(path: str | os.PathLike, min_noun_videos: int = 10) -> tuple[str, dict]:
    """The noun-verb bias of SSv2 metadata: a folder with the standard file names (each list, and
    both pooled) or one record-list JSON file."""
    from vislearn.video.data.ssv2 import find_metadata

    path = Path(path)
    if path.is_file():
        parts = {path.name: io.read_records(path)}
    else:
        found = find_metadata(path)
        parts = {k: io.read_records(found[k]) for k in ("train", "validation") if k in found}
        if not parts:
            raise UserError(f"{path}: no something-something-v2-train.json or -validation.json")
        if len(parts) == 2:
            parts["both"] = parts["train"] + parts["validation"]
    figures = {name: noun_bias(recs, min_noun_videos) for name, recs in parts.items()}
    usable = [f for f in figures.values() if "accuracy_gain" in f]
    if not usable:
        raise UserError(f"{path}: fewer than 2 templates or 2 nouns among the single-object records whose noun "
                        f"has >= {min_noun_videos} videos; nothing to measure (lower --min-noun-videos?)")
    text = f"SSv2 metadata: {path}\n" + format_noun_bias(figures)
    return text, {"path": str(path), "noun_bias": figures}


def is_metadata(path: str | os.PathLike) -> bool:
    """A record-list file, or a folder with SSv2's standard train/validation file names (not a split folder)."""
    from vislearn.video.data.ssv2 import find_metadata

    path = Path(path)
    return path.is_file() or (path.is_dir() and bool({"train", "validation"} & set(find_metadata(path))))


def format_rows(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header)] + [line(r) for r in rows])
