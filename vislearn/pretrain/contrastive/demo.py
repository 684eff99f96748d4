"""The `make demo` row of ReSim, LooC and metric learning (about 3 minutes on 2 cores), each against its baseline on
a tiny budget (a few dozen steps: the figures show the machinery working, not the methods' merits; the 3-seed
tables are in docs/pretrain.md):

- ReSim vs MoCo-v2: both pre-train MobileNetV2 on the object set's images for the same steps; then window
  retrieval across two views of held-out images (each C4 window of one view finds its own window among every
  window of the other view, by cosine of roi_align-pooled features): a direct probe of what ReSim trains.
- LooC vs MoCo-v2 (both with colour, rotation and texture augmentations): linear probes of the frozen features on
  4-way rotation and on colour-defined classes (subsets of the tasks of `tasks.py`).
- Metric learning: the nearest-positive rule against all positives (`vislearn.pretrain.metric.demo`).
Resumable: a second `make demo` reuses finished runs.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.figures import pyplot, save_figure
from vislearn.common.files import write_text
from vislearn.common.jsonio import write_json

from ..probe import Encoder, embed, linear_probe
from .regions import pool_regions, region_pairs, scaled_windows
from .spaces import CONCAT, space_encoder
from .tasks import task_splits
from .train import ContrastConfig, load_bank, load_learner, normalise_float, pretrain
from .views import AugmentConfig, draw_view, render_views

TINY = dict(data="objects", backbone="mobilenet_v2_ms", img_size=48, epochs=2, steps_per_epoch=12, batch_size=48)
PROBE_IMAGES = {"train": 1200, "val": 300, "test": 600}
LABEL = "tiny budget (24 steps of 48 images)"


@torch.no_grad()
def window_retrieval(run: Path, images: int = 150, seed: int = 0) -> float:
    """Top-1 accuracy of C4 windows finding their own window in the other view of the same held-out image."""
    learner, cfg = load_learner(run)
    bank = load_bank(ContrastConfig(**{**TINY, "out": "unused", "method": "moco"}), Path("."), lambda *a: None)
    rng = np.random.default_rng([seed, 0xD3])
    aug = AugmentConfig(jitter_p=0.0, gray_p=0.0, blur_p=0.0)
    idx = rng.choice(len(bank), images, replace=False)
    side = bank.shape[1]
    a = [draw_view(rng, side, aug) for _ in idx]
    b = [draw_view(rng, side, aug) for _ in idx]
    window, stride = scaled_windows(cfg.img_size)["c4"]
    qa, qb = region_pairs(a, b, cfg.img_size, window, stride, 16, rng)
    fa = learner.encoder.maps(normalise_float(render_views(bank, idx, a, cfg.img_size)))["c4"]
    fb = learner.encoder.maps(normalise_float(render_views(bank, idx, b, cfg.img_size)))["c4"]
    za = torch.nn.functional.normalize(pool_regions(fa, qa, cfg.img_size), dim=1)
    zb = torch.nn.functional.normalize(pool_regions(fb, qb, cfg.img_size), dim=1)
    sim = za @ zb.t()
    same_image = qa[:, :1] == qb[:, :1].t()
    sim[~same_image] = -2  # each window searches its own image's other view
    return float((sim.argmax(dim=1) == torch.arange(len(za))).float().mean())


def subset_probe(spec: str, task: str) -> float:
    module, size, _ = space_encoder(spec)
    encoder = Encoder(module, size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), spec)
    splits = task_splits(task, 64)
    feats, labels = {}, {}
    for split, n in PROBE_IMAGES.items():
        feats[split] = embed(encoder, splits[split].images[:n])
        labels[split] = splits[split].labels[:n].numpy()
    return linear_probe(feats, labels)["test_error"]


def bars(title: str, groups: dict[str, dict[str, float]], ylabel: str, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    names = list(groups)
    series = list(next(iter(groups.values())))
    width = 0.8 / len(series)
    for j, s in enumerate(series):
        ax.bar(np.arange(len(names)) + j * width, [100 * groups[n][s] for n in names], width, label=s)
    ax.set_xticks(np.arange(len(names)) + width * (len(series) - 1) / 2, names)
    ax.set(title=f"{title}\n({LABEL})", ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    out = Path(out)
    torch.set_num_threads(max(1, jobs))
    quiet = dict(resume=True, log=lambda *a: None, progress=False)
    runs = {"moco": ContrastConfig(method="moco", out=str(out / "moco"), **TINY),
            "resim": ContrastConfig(method="resim", out=str(out / "resim"), **TINY),
            "moco_rot": ContrastConfig(method="moco", out=str(out / "moco_rot"), augment="colour,rotation,texture",
                                       **TINY),
            "looc": ContrastConfig(method="looc", out=str(out / "looc"), **TINY)}
    for cfg in runs.values():
        pretrain(cfg, **quiet)
    retrieval = {name: window_retrieval(Path(runs[name].out)) for name in ("moco", "resim")}
    probes = {}
    for task in ("rotation", "colours"):
        probes[task] = {"MoCo-v2": subset_probe(f"{runs['moco_rot'].out}@backbone", task),
                        "LooC": subset_probe(f"{runs['looc'].out}@all", task),
                        "LooC++": subset_probe(f"{runs['looc'].out}@{CONCAT}", task)}
    from vislearn.pretrain.metric.demo import metric_demo  # noqa: PLC0415

    metric_measures, metric_figure, metric_notes = metric_demo(out / "metric")
    figures = [bars("ReSim vs MoCo-v2: C4 window retrieval across views", {"window top-1": {
        "MoCo-v2": retrieval["moco"], "ReSim": retrieval["resim"]}}, "accuracy %", out / "resim.png"),
        bars("LooC vs MoCo-v2: linear probe", {t: probes[t] for t in probes}, "test error %", out / "looc.png"),
        metric_figure]
    write_json(out / "results.json", {"window_retrieval": retrieval, "probe_test_error": probes}, indent=1)
    write_text(out / "index.html", "<!doctype html><meta charset='utf-8'><title>ReSim, LooC, metric learning</title>"
               "<h1>ReSim, LooC and metric learning against their baselines (tiny budget)</h1><p>"
               + html.escape(__doc__.split("\n\n")[0]) + "</p>"
               + "".join(f"<img src='{html.escape(str(Path(f).relative_to(out)))}'>" for f in figures))
    measures = [
        Measure("ReSim: C4 window retrieval across views (150 held-out images)", f"{100 * retrieval['resim']:.1f}%",
                f"MoCo-v2 {100 * retrieval['moco']:.1f}%"),
        Measure("LooC++: rotation probe test error", f"{100 * probes['rotation']['LooC++']:.1f}%",
                f"MoCo-v2 {100 * probes['rotation']['MoCo-v2']:.1f}%, chance 75.0%"),
        Measure("LooC++: colour-class probe test error", f"{100 * probes['colours']['LooC++']:.1f}%",
                f"MoCo-v2 {100 * probes['colours']['MoCo-v2']:.1f}%, chance 83.3%"),
        *metric_measures,
    ]
    return DemoOutcome(measures=measures, report=out / "index.html", notes=[
        f"{LABEL} per pre-training run on the object set at {TINY['img_size']} px; probes on "
        f"{PROBE_IMAGES['train']} training images: the 3-seed tables are in docs/pretrain.md", *metric_notes])
