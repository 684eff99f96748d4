"""Figures and the report page of the dynamics-cycles runs."""
from __future__ import annotations

from pathlib import Path

from vislearn.common.figures import pyplot as _plt
from vislearn.common.figures import save_figure as _save
from vislearn.common.jsonio import read_jsonl


def plot_policy_curve(metrics: Path, out: Path, title: str) -> Path:
    plt = _plt()
    rows = [r for r in read_jsonl(metrics) if r.get("mean_return") is not None]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["steps"] / 1e3 for r in rows], [r["mean_return"] for r in rows])
    ax.set_xlabel("environment steps (k)")
    ax.set_ylabel("training episode return")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def plot_fit_curves(metrics: Path, out: Path, title: str) -> Path:
    """The losses of the map training (log scale) and, where it was measured, the transfer's target return."""
    plt = _plt()
    rows = read_jsonl(metrics)
    evals = [r for r in rows if r.get("eval_return") is not None]
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(9 if evals else 5, 3), squeeze=False)
    ax = axes[0][0]
    for key, label in (("cycle_x", "dynamics cycle (source T)"), ("cycle_y", "dynamics cycle (target T)"),
                       ("back", "back-translation"), ("adv", "adversarial (maps)"), ("disc", "discriminators")):
        if any(key in r for r in rows):
            ax.plot([r["step"] for r in rows], [max(r.get(key, float("nan")), 1e-6) for r in rows], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("map step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    if evals:
        ax = axes[0][1]
        ax.plot([r["step"] for r in evals], [r["eval_return"] for r in evals], marker="o")
        ax.set_xlabel("map step")
        ax.set_ylabel("target return (transfer)")
    fig.tight_layout()
    return _save(fig, out)
