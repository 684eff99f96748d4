"""Figures of the locomotion runs: training curves (return and falls against steps) and the adaptation plot
(tracking error against time since a mid-episode dynamics change, one line per policy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vislearn.common.figures import pyplot as _plt
from vislearn.common.figures import save_figure as _save
from vislearn.common.jsonio import read_jsonl


def plot_training(metrics: Path, out: Path, title: str = "") -> Path:
    plt = _plt()
    rows = [r for r in read_jsonl(metrics) if r.get("mean_return") is not None]
    steps = [r["steps"] / 1e6 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot(steps, [r["mean_return"] for r in rows])
    a.set_xlabel("environment steps (M)")
    a.set_ylabel("episode return")
    b.plot(steps, [100 * r["falls"] for r in rows], color="C3")
    b.set_xlabel("environment steps (M)")
    b.set_ylabel("episodes ending in a fall (%)")
    b.set_ylim(-5, 105)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def plot_adaptation(curves: dict[str, dict], out: Path, title: str = "") -> Path:
    """`curves`: label -> {"t": seconds since the change, "error": mean |v - command|, "falls": fraction}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, c in curves.items():
        ax.plot(c["t"], c["error"], label=f"{label} (falls {100 * c['falls']:.0f}%)")
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("seconds since the dynamics change")
    ax.set_ylabel("velocity tracking error (m/s)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def smooth(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < k:
        return x
    return np.convolve(x, np.ones(k) / k, mode="same")
