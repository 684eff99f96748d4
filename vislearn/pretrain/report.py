"""The MAE run's report: reconstructions.png (image, masked input, reconstruction, per row) and index.html with
the loss curve's numbers, so a run can be judged by eye."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from vislearn.common.files import atomic_path, write_text

from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """Normalised [3,H,W] -> uint8-range float [H,W,3] in 0..1."""
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x * s + m).clamp(0, 1).permute(1, 2, 0).numpy()


@torch.no_grad()
def reconstructions(model, images: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked inputs, reconstructions) of `images` with a fixed mask."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    _, pred, mask = model(images, generator=g)
    masked = images * (1 - model.pixel_mask(mask)) + model.pixel_mask(mask) * images.amin()
    return masked, model.reconstruct(images, pred, mask)


def plot_reconstructions(model, images: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masked, recon = reconstructions(model, images)
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.4))
    axes = np.asarray(axes).reshape(3, n)
    for j in range(n):
        for i, (row, title) in enumerate(((images, "image"), (masked, "visible (25%)"), (recon, "reconstruction"))):
            axes[i, j].imshow(to_rgb(row[j]))
            axes[i, j].axis("off")
            if j == 0:
                axes[i, j].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def write_report(model, images: torch.Tensor, metrics: list[dict], cfg, out: Path) -> None:
    plot_reconstructions(model, images, out / "reconstructions.png")
    rows = "".join(f"<tr><td>{m['epoch'] + 1}</td><td>{m['loss']:.4f}</td><td>{m['eval_loss']:.4f}</td>"
                   f"<td>{m['images_per_s']:.0f}</td></tr>" for m in metrics)
    page = f"""<!doctype html><meta charset="utf-8"><title>MAE {html.escape(cfg.backbone)}</title>
<h1>MAE pre-training: {html.escape(cfg.backbone)}, {cfg.img_size} px, mask ratio {cfg.mask_ratio}</h1>
<p>Data: {html.escape(str(cfg.data))}. Encoder: <code>encoder.pth</code> (load with
<code>create_backbone("{html.escape(cfg.backbone)}", weights="encoder.pth", img_size={cfg.img_size})</code>).</p>
<img src="reconstructions.png" alt="reconstructions">
<p>Fixed-mask loss: the normalised-pixel loss on the same 64 frames and masks after every epoch.</p>
<table border="1" cellpadding="3"><tr><th>epoch</th><th>train loss</th><th>fixed-mask loss</th><th>images/s</th></tr>
{rows}</table>
"""
    write_text(out / "index.html", page)
