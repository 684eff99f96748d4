"""A contrastive run's page: curves.png (every loss and positive-key accuracy per epoch) and index.html."""
from __future__ import annotations

import html
from pathlib import Path

from vislearn.common.figures import pyplot, save_figure
from vislearn.common.files import write_text


def plot_curves(metrics: list[dict], title: str, path: Path) -> None:
    plt = pyplot()
    epochs = [m["epoch"] + 1 for m in metrics]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key in sorted({k for m in metrics for k in m if k.startswith("loss")}):
        a.plot(epochs, [m.get(key, float("nan")) for m in metrics], marker="o", ms=3, label=key)
    for key in sorted({k for m in metrics for k in m if k.startswith("acc_")}):
        b.plot(epochs, [m.get(key, float("nan")) for m in metrics], marker="o", ms=3, label=key)
    a.set(xlabel="epoch", ylabel="InfoNCE loss", title=title)
    b.set(xlabel="epoch", ylabel="positive key ranked first", ylim=(0, 1))
    for ax in (a, b):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_run_report(metrics: list[dict], config: dict, results: dict, out: Path) -> None:
    method = config["method"]
    plot_curves(metrics, f"{method}, {config['backbone']}", out / "curves.png")
    keys = ["loss"] + sorted(k for k in metrics[-1] if k.startswith(("loss_", "acc_")))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join("<tr><td>{}</td>{}<td>{:.0f}</td></tr>".format(
        m["epoch"] + 1, "".join(f"<td>{m.get(k, float('nan')):.4f}</td>" for k in keys), m["images_per_s"])
        for m in metrics)
    settings = ", ".join(f"{k}={html.escape(str(v))}" for k, v in config.items() if k not in ("out",))
    page = f"""<!doctype html><meta charset="utf-8"><title>{html.escape(method)} {html.escape(config['backbone'])}</title>
<h1>{html.escape(method)} pre-training: {html.escape(config['backbone'])}, {config['img_size']} px</h1>
<p>Data: {html.escape(str(config['data']))} ({results['images']} images), augmentations
{html.escape(', '.join(results['augmentations']) or 'crop + flip only')}, {results['train_seconds']:.0f} s of training
at {results['images_per_s']:.0f} images/s. Encoder: <code>encoder.pth</code>.</p>
<img src="curves.png" alt="loss and accuracy curves">
<table border="1" cellpadding="3"><tr><th>epoch</th>{head}<th>images/s</th></tr>
{rows}</table>
<p><small>{settings}</small></p>
"""
    write_text(out / "index.html", page)
