"""A metric run's report page: curves.png (loss, val Recall@1, val modes kept per interval), embeddings.png (the
test embeddings in 2-D by PCA, colour = coarse class, marker = mode: collapse shows as one blob per colour) and
index.html with the results table."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from vislearn.common.figures import pyplot, save_figure
from vislearn.common.files import write_text

MARKERS = "os^Dv*"


def plot_curves(metrics: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    steps = [m["step"] for m in metrics]
    for ax, key, name in zip(axes, ("loss", "val_recall@1", "val_modes_kept"),
                             ("training loss (interval mean)", "val Recall@1 (training classes)",
                              "val modes kept (fraction)")):
        ax.plot(steps, [m[key] for m in metrics], marker="o", ms=3)
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[2].set_ylim(0, 1.05)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_embeddings(embs: dict[str, np.ndarray], parts: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, name in zip(axes, ("test_train", "test_heldout"), ("training classes", "held-out classes")):
        emb, part = embs[key], parts[key]
        z = emb - emb.mean(0)
        xy = z @ np.linalg.svd(z, full_matrices=False)[2][:2].T
        for ci, c in enumerate(part.labels.unique().tolist()):
            modes = part.modes[part.labels == c].unique().tolist()
            for mi, m in enumerate(modes):
                sel = ((part.labels == c) & (part.modes == m)).numpy()
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=f"C{ci}", marker=MARKERS[mi % len(MARKERS)],
                           label=part.mode_names[m], alpha=0.6)
        ax.set_title(f"{name} (test split): colour = class, marker = mode", fontsize=8)
        ax.legend(fontsize=5, markerscale=1.5, ncol=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def write_report(cfg, metrics: list[dict], results: dict, embs: dict, parts: dict, out: Path) -> None:
    title = f"{cfg.data}: {cfg.loss} loss, {cfg.positives} positives, seed {cfg.seed}, {cfg.steps} steps"
    plot_curves(metrics, out / "curves.png", title)
    plot_embeddings(embs, parts, out / "embeddings.png", title)
    rows = ""
    for key, name in (("heldout", "held-out classes"), ("train", "training classes")):
        r = results[key]
        s = r["subclusters"]
        rows += (f"<tr><td>{name}</td>" + "".join(f"<td>{r[f'recall@{k}']:.3f}</td>" for k in (1, 2, 4, 8))
                 + f"<td>{s['kept']}/{s['modes']}</td><td>{s['nmi']:.3f}</td></tr>")
    curve_rows = "".join(f"<tr><td>{m['step']}</td><td>{m['loss']:.4f}</td><td>{m['val_recall@1']:.3f}</td>"
                         f"<td>{m['val_modes_kept']:.2f}</td></tr>" for m in metrics)
    page = f"""<!doctype html><meta charset="utf-8"><title>metric {html.escape(cfg.data)}</title>
<h1>Metric learning: {html.escape(title)}</h1>
<p>Embedder: <code>embedder.pt</code> (<code>vislearn pretrain retrieve --run RUN --query IMAGES</code>).
Recall@k: a same-class item among the k nearest (test split). Modes kept: per class, KMeans with k = its mode
count, clusters matched to modes (Hungarian); a mode is kept when its cluster is at least 2/3 that mode and holds
at least half of it (a class counts at least 1).</p>
<table border="1" cellpadding="3"><tr><th></th><th>R@1</th><th>R@2</th><th>R@4</th><th>R@8</th>
<th>modes kept</th><th>NMI</th></tr>{rows}</table>
<img src="curves.png" alt="curves"><br><img src="embeddings.png" alt="embeddings">
<table border="1" cellpadding="3"><tr><th>step</th><th>loss</th><th>val R@1</th><th>val modes kept</th></tr>
{curve_rows}</table>
"""
    write_text(out / "index.html", page)
