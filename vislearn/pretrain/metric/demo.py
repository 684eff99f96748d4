"""The metric-learning row of `make demo` (~25 s of one core): triplet loss on digits-modes (coarse classes of two
digits; a small CNN on 8x8 pixels) with every positive and with the nearest-positive rule, same seed and a tiny
budget of 200 steps; one figure compares them (training classes' test embeddings in 2-D, and the numbers).
Resumable: a second call reuses the finished runs in `out`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vislearn.common.demo import Measure
from vislearn.common.figures import pyplot, save_figure

from .data import load_split, mode_set
from .model import load_embedder
from .train import MetricConfig, train

DATA = "digits-modes"
DEMO_CONFIG = dict(data=DATA, loss="triplet", steps=200, eval_every=50, per_class=32, seed=0, threads=1)
LABELS = {"all": "all positives (plain)", "nearest": "nearest positive (the rule)"}


def pca2(x: np.ndarray) -> np.ndarray:
    z = x - x.mean(0)
    return z @ np.linalg.svd(z, full_matrices=False)[2][:2].T


def comparison_figure(out: Path, runs: dict[str, Path], results: dict[str, dict]) -> Path:
    part = load_split(mode_set(DATA), "test", "train")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, positives in zip(axes, ("all", "nearest")):
        xy = pca2(load_embedder(runs[positives] / "embedder.pt").embed(part.images))
        for ci, c in enumerate(part.labels.unique().tolist()):
            for mi, m in enumerate(part.modes[part.labels == c].unique().tolist()):
                sel = ((part.labels == c) & (part.modes == m)).numpy()
                ax.scatter(xy[sel, 0], xy[sel, 1], s=7, color=f"C{ci}", marker="os"[mi], alpha=0.6,
                           label=f"digit {part.mode_names[m]} (class {ci + 1})")
        s = results[positives]["train"]["subclusters"]
        ax.set_title(f"{LABELS[positives]}: {s['kept']}/{s['modes']} modes kept", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=6, ncol=2)
    names = ["held-out R@1", "modes kept\n(train classes)", "modes kept\n(held-out)"]
    for i, positives in enumerate(("all", "nearest")):
        r = results[positives]
        vals = [r["heldout"]["recall@1"], r["train"]["subclusters"]["fraction"], r["heldout"]["subclusters"]["fraction"]]
        axes[2].bar(np.arange(3) + 0.38 * (i - 0.5), vals, width=0.38, label=LABELS[positives])
    axes[2].set_xticks(range(3), names, fontsize=8)
    axes[2].set_ylim(0, 1.1)
    axes[2].legend(fontsize=7, loc="lower right")
    axes[2].set_title("test split", fontsize=9)
    fig.suptitle(f"Triplet loss on {DATA} (coarse classes of 2 digits), tiny budget: "
                 f"{DEMO_CONFIG['steps']} steps, seed {DEMO_CONFIG['seed']}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out / "metric_rule_vs_plain.png", dpi=90)


def metric_demo(out: Path) -> tuple[list, Path, list[str]]:
    out = Path(out)
    torch.set_num_threads(1)
    runs = {p: out / f"{DATA}-triplet-{p}" for p in ("all", "nearest")}
    results = {p: train(MetricConfig(out=str(runs[p]), positives=p, **DEMO_CONFIG), resume=True,
                        log=lambda *a: None) for p in runs}
    figure = comparison_figure(out, runs, results)
    rule, plain = results["nearest"], results["all"]

    def kept(r, side):
        return f"{r[side]['subclusters']['kept']}/{r[side]['subclusters']['modes']}"

    measures = [
        Measure("metric (Levi et al.): modes kept, training classes, nearest-positive rule", kept(rule, "train"),
                f"all positives {kept(plain, 'train')}"),
        Measure("metric (Levi et al.): held-out Recall@1, nearest-positive rule",
                f"{100 * rule['heldout']['recall@1']:.1f}%", f"all positives {100 * plain['heldout']['recall@1']:.1f}%"),
    ]
    notes = [f"triplet loss on {DATA}, {DEMO_CONFIG['steps']} steps, one seed (a tiny budget: the 3-seed table is in "
             "docs/pretrain.md); modes kept: KMeans per class with k = its modes, Hungarian matching, a mode kept "
             "when its cluster is >= 2/3 that mode and holds >= 1/2 of it",
             f"runs: {runs['all']}, {runs['nearest']} (index.html in each)"]
    return measures, figure, notes
