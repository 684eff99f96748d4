"""Statistics of a split folder: class counts per side, nouns per set, what was dropped and why,
and a plot of the class distribution.

Writes into the folder (or `--out`): `stats.json` (everything below), `class_counts.csv` (one row per class)
and `class_distribution.png` (per-class training/validation counts, classes sorted by size).
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np

from common.files import atomic_file, atomic_path
from datasets.ssv2 import Record, template_to_class

from . import io
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


def stats(path: str | os.PathLike, plot: bool = True, out: str | os.PathLike | None = None) -> tuple[str, dict]:
    """Compute, print-ready text and data; files go to `out` (default: the split folder itself)."""
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
    out = Path(out) if out is not None else folder.path
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
