"""Figures and text tables of a run's results (training curves, per-class accuracy, confusion matrix),
written as PNG files or kept as figures for the report pages. Matplotlib without a display (Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from vislearn.common.files import atomic_path  # noqa: E402
from vislearn.common.jsonio import loads_json  # noqa: E402


def _save(fig, out: str | Path) -> None:
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [loads_json(line, f"{path} line {i + 1}") for i, line in enumerate(path.read_text().splitlines())
            if line.strip()]


def plot_curves(metrics: list[dict], out: str | Path) -> None:
    fig = curves_figure(metrics)
    if fig is not None:
        _save(fig, out)


def curves_figure(metrics: list[dict]):
    """Loss and top-1 per epoch, training vs held-out; None without epochs."""
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    if not epochs:
        return None
    x = [m["epoch"] + 1 for m in epochs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(x, [m["train_loss"] for m in epochs], label="train")
    if any("holdout_loss" in m for m in epochs):
        a.plot(x, [m.get("holdout_loss", np.nan) for m in epochs], label="held-out")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(x, [m["train_top1"] for m in epochs], label="train top-1")
    if any("holdout_top1" in m for m in epochs):
        b.plot(x, [m.get("holdout_top1", np.nan) for m in epochs], label="held-out top-1")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend(), b.grid(alpha=0.3)
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (a, b):
        for line in ax.get_lines():
            line.set_marker("o" if len(x) < 30 else "")
    fig.tight_layout()
    return fig


def plot_per_class(per_class: dict, out: str | Path, title: str = "per-class top-1") -> None:
    names = list(per_class)
    vals = [np.nan if per_class[n] is None else per_class[n] for n in names]
    order = np.argsort(np.nan_to_num(vals, nan=-1))
    fig, ax = plt.subplots(figsize=(8, max(3, 0.22 * len(names))))
    ax.barh(range(len(names)), [vals[i] for i in order])
    ax.set_yticks(range(len(names)), [names[i][:60] for i in order], fontsize=6 if len(names) > 40 else 8)
    ax.set_xlim(0, 1), ax.set_xlabel("top-1 accuracy"), ax.set_title(title)
    fig.tight_layout()
    _save(fig, out)


def plot_confusion(confusion: list[list[int]], class_names: list[str], out: str | Path) -> None:
    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(class_names)), max(4, 0.3 * len(class_names))))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), [n[:30] for n in class_names], rotation=90, fontsize=6)
        ax.set_yticks(range(len(class_names)), [n[:30] for n in class_names], fontsize=6)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, out)


# --------------------------------------------------------------------------- the HTML report
