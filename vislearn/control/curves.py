"""A PPO run's success curve (RUN/success.png from RUN/metrics.jsonl): the training success over the last 100
episodes against environment steps, with the final evaluation marked."""
from __future__ import annotations

from pathlib import Path

from vislearn.common.files import atomic_path
from vislearn.common.jsonio import read_jsonl


def plot_success_curve(metrics: Path, out: Path, title: str = "", final: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in read_jsonl(metrics) if r.get("success_last100") is not None]  # None: no episode has ended yet
    steps = [r["steps"] for r in rows]
    success = [100 * r["success_last100"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, success, label="training (last 100 episodes)")
    if final is not None and steps:
        ax.scatter([steps[-1]], [100 * final], color="C3", zorder=3, label="evaluation (seeds 0..)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(out)
