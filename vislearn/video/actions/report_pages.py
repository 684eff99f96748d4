"""The pages of `vislearn video report`: one HTML string per kind of output folder.

- `table_page`: the demo's (or `make table-full`'s) folder: the paper-style table, the
  compositional-gap chart, the few-shot columns, how to reproduce each row, wall time, the data set.
- `run_page`: a run folder of `actions.train`: config, curves, speed, per-class accuracy, the most
  confused pairs, contact sheets of a few validation videos.
- `evaluation_page`: the `--out` folder of `actions.evaluate` (models, ensemble, the same analysis).
- `fewshot_page`: the output folder of `actions.fewshot` (novel top-1/top-5 per k with 95% CIs).
Everything comes from the files the commands wrote; nothing is re-run except drawing the contact
sheets, which decodes only the sheet frames of a few videos.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import numpy as np
import yaml

from vislearn.common.jsonio import read_json

from . import figures
from .html_page import (Raw, details, esc, figure_uri, file_uri, image_uri, img, join, page, section, table,
                        tag)

SHEET_VIDEOS = 4  # validation videos with a contact sheet on a run page (the surest right and wrong ones)
CONFUSED_PAIRS = 10
BOX_JSON_LIMIT = 200 * 2 ** 20  # a box JSON file above this is not loaded for the contact sheets (use a box store)
CONFUSION_IMAGE_CLASSES = 60  # confusion.png is embedded up to this many classes (174 make a 5,000-px image)


# ----------------------------------------------------------------------------------- small pieces

def cards(items: list[tuple[str, object]]) -> Raw:
    return tag("div", join(tag("div", join([tag("b", v), tag("span", k)]), cls="card") for k, v in items),
               cls="cards")


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.{digits}f}%"


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def bar(fraction: float | None) -> Raw:
    width = 0 if fraction is None or np.isnan(fraction) else max(0.0, min(1.0, fraction)) * 100
    return Raw(f'<div class="bar"><i style="width:{width:.1f}%"></i></div>')


def command(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def link(target: Path, page_path: Path, text: str) -> Raw:
    """A relative link from the page being written to another local file (a run's report)."""
    href = os.path.relpath(target, page_path.parent)
    return tag("a", text, href=Path(href).as_posix())


def generated(path: Path) -> str:
    return f"{path} · written {time.strftime('%Y-%m-%d %H:%M')}"


def read_scores(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with np.load(path) as z:
        return {"video_id": [str(v) for v in z["video_id"]], "scores": z["scores"], "label": z["label"],
                "class_names": [str(n) for n in z["class_names"]]}


def read_config(folder: Path) -> tuple[str, dict]:
    path = folder / "config.yaml"
    if not path.is_file():
        return "", {}
    text = path.read_text()
    data = yaml.safe_load(text)
    return text, data if isinstance(data, dict) else {}


# ----------------------------------------------------------------------------------- evaluation analysis

def confused_pairs(confusion: list[list[int]], names: list[str], limit: int = CONFUSED_PAIRS) -> list[tuple]:
    """(true, predicted, videos, share of the true class) of the largest off-diagonal cells."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.size == 0:
        return []
    rows = cm.sum(1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
    cells.sort(key=lambda c: (-c[0], -c[0] / rows[c[1]], names[c[1]], names[c[2]]))
    return [(names[i], names[j], n, n / rows[i]) for n, i, j in cells[:limit]]


def evaluation_sections(summary: dict, names: list[str] | None = None) -> list[Raw]:
    """Per-class accuracy (sorted) and the most confused pairs, by class name, from the confusion matrix."""
    per_class = summary.get("per_class") or {}
    names = names or list(per_class)
    confusion = summary.get("confusion")
    out = []
    if confusion is not None and len(confusion) == len(names):
        pairs = confused_pairs(confusion, names)
        rows = [[t, p, Raw(f'<span class="n">{n}</span>'), pct(share, 0)] for t, p, n, share in pairs]
        out.append(section(
            f"The {len(pairs)} most-confused pairs", tag("p", "True class, what the model said instead, how many "
                                                          "validation videos, and their share of the true class.",
                                                          cls="muted"),
            table(["true class", "predicted as", "videos", "of the class"], rows, id="confused")
            if rows else tag("p", "No video was confused."), id="confusions"))
    if per_class:
        cm = np.asarray(confusion) if confusion is not None and len(confusion) == len(names) else None
        counts = {n: int(cm[i].sum()) for i, n in enumerate(names)} if cm is not None else {}
        worst_with = {}
        if cm is not None:
            for i, n in enumerate(names):
                row = cm[i].copy()
                row[i] = 0
                if row.max() > 0:
                    worst_with[n] = f"{names[int(row.argmax())]} ({int(row.max())})"
        order = sorted(per_class, key=lambda n: (-(per_class[n] if per_class[n] is not None else -1), n))
        rows = [[n, Raw(f'<span class="n">{counts.get(n, "-")}</span>'), pct(per_class[n], 0), bar(per_class[n]),
                 worst_with.get(n, "")] for n in order]
        out.append(section(
            "Per-class top-1, best to worst",
            tag("p", f"{len(names)} classes; mean class accuracy {pct(summary.get('mean_class_accuracy'))}.",
                cls="muted"),
            table(["class", "videos", "top-1", "", "most often taken for (videos)"], rows, id="per-class"),
            id="per-class-section"))
    return out


def video_sheets(cfg: dict, scores: dict | None, limit: int = SHEET_VIDEOS) -> Raw | None:
    """Contact sheets (actions.render) of the surest right and the surest wrong validation videos:
    boxes by identity, the predicted label and score over the frames, the true label below."""
    if scores is None or not len(scores["label"]):
        return None
    from vislearn.video.data.box_store import open_boxes
    from vislearn.common.video import find_video, open_video

    from .render import FrameBoxes, contact_sheet

    probs, labels, names = scores["scores"], scores["label"], scores["class_names"]
    pred, conf = probs.argmax(1), probs.max(1)
    right = [i for i in np.argsort(-conf, kind="stable") if pred[i] == labels[i]]
    wrong = [i for i in np.argsort(-conf, kind="stable") if pred[i] != labels[i]]
    half = limit // 2
    picks = right[:max(half, limit - len(wrong))] + wrong[:max(limit - half, limit - len(right))]
    video_root = cfg.get("videos") or ""
    if not video_root or not Path(video_root).is_dir():
        return join([tag("p", f"No contact sheets: the video folder {video_root or '(none in the config)'} "
                              f"is not there.", cls="muted")])
    boxes, box_note = None, ""
    box_path = Path(cfg["boxes"]) if cfg.get("boxes") else None
    if box_path is not None and box_path.is_file() and box_path.stat().st_size > BOX_JSON_LIMIT:
        box_note = (f"boxes not drawn: {box_path} is a {box_path.stat().st_size / 2 ** 30:.1f} GB JSON file; "
                    f"a box store (vislearn video data index-boxes) is read without loading it whole")
    elif box_path is not None:
        try:
            boxes = open_boxes(box_path)
        except Exception as e:  # the sheets still show the frames
            box_note = f"boxes not drawn ({box_path}: {e})"
    figures, notes = [], [box_note] if box_note else []
    for i in picks:
        vid = scores["video_id"][i]
        true, said = names[labels[i]], names[pred[i]]
        top5 = np.argsort(-probs[i])[:5]
        try:
            path = find_video(video_root, vid)
            if path is None:
                raise FileNotFoundError(f"no video {vid} in {video_root}")
            vb = boxes.get(vid) if boxes is not None and vid in boxes else None
            with open_video(path) as reader:
                sheet = contact_sheet(reader, FrameBoxes.from_video_boxes(vb, int(cfg.get("num_slots", 4))),
                                      f"{said} {100 * conf[i]:.0f}%")
        except Exception as e:  # one unreadable video does not take the page with it
            notes.append(f"video {vid}: {e}")
            continue
        ok = pred[i] == labels[i]
        caption = join([tag("span", "right" if ok else "wrong", cls="ok" if ok else "bad"), " · video ",
                        tag("code", vid), ": predicted ", tag("b", said), f" ({100 * conf[i]:.0f}%), true ",
                        tag("b", true), Raw("<br>"),
                        tag("small", "top-5: " + "; ".join(f"{names[k]} {100 * probs[i, k]:.0f}%" for k in top5))])
        figures.append(tag("figure", join([img(image_uri(sheet, photo=True), f"contact sheet of video {vid}"),
                                           tag("figcaption", caption)])))
    parts = [tag("div", join(figures), cls="sheets")]
    if notes:
        parts.append(tag("p", "; ".join(notes), cls="muted"))
    return join(parts)


def sheets_section(cfg: dict, scores: dict | None) -> Raw | None:
    body = video_sheets(cfg, scores)
    if body is None:
        return None
    return section("What the model saw: validation videos",
                   tag("p", join([f"The {SHEET_VIDEOS // 2} surest right and {SHEET_VIDEOS - SHEET_VIDEOS // 2} surest wrong "
                            f"predictions. Eight frames each, boxes coloured by identity (hand orange), the "
                            f"slot the model reads it in (s0 hand, s1.. objects); the banner gives the "
                            f"prediction, as ", tag("code", "vislearn video infer --render"), " draws it."]), cls="muted"),
                   body, id="videos")


# ----------------------------------------------------------------------------------- run page

def run_page(folder: Path, out: Path) -> str:
    results = read_json(folder / "results.json")
    cfg_text, cfg = read_config(folder)
    metrics = [m for m in figures.read_metrics(folder / "metrics.jsonl") if m.get("kind") == "epoch"]
    scores = read_scores(folder / "scores.npz")
    ev = results.get("evaluation") or {}
    model = results.get("model") or cfg.get("model") or (
        f"few-shot stage, {results['shots']}-shot draw {results.get('draw', 0)}" if "shots" in results else "?")
    rates = [m["train_samples"] / m["train_seconds"] for m in metrics if m.get("train_seconds") and "train_samples" in m]
    epoch_s = [m["train_seconds"] for m in metrics if "train_seconds" in m]
    best = results.get("best") or {}
    top = [("model", model), ("parameters", f"{results.get('parameters', 0):,}")]
    if ev:
        top += [(f"top-1 on {ev.get('set', 'evaluation')}", pct(ev.get("top1"))),
                (f"top-5 on {ev.get('set', 'evaluation')}", pct(ev.get("top5"))),
                ("mean class accuracy", pct(ev.get("mean_class_accuracy"))), ("videos evaluated", ev.get("videos"))]
    top += [("epochs", f"{len(metrics)} of {results.get('epochs', '?')}")]
    if best.get("epoch", -1) >= 0:
        top.append(("chosen epoch (held-out top-1)", f"{best['epoch'] + 1} ({pct(best.get('holdout_top1'))})"))
    if rates:
        top += [("samples/s (training)", f"{np.mean(rates):.1f}"), ("time per epoch", seconds(float(np.mean(epoch_s))))]
    body = [cards(top)]
    curves = file_uri(folder / "curves.png")  # written by actions.train at the end, from the same metrics
    if curves is None and metrics:
        curves = figure_uri(figures.curves_figure(metrics))
    if curves is not None:
        body.append(section("Loss and accuracy per epoch", tag("p", "Training (running average over the epoch) "
                                                                    "vs the held-out part of the training set, "
                                                                    "on which the checkpoint is chosen.", cls="muted"),
                            img(curves, "loss and accuracy curves"), id="curves"))
    if ev:
        # results.json counts epochs from 0 ("epoch 19" of 20): shown as the log and the curves count them
        ckpt = f"epoch {best['epoch'] + 1}" if best.get("epoch", -1) >= 0 else ev.get("checkpoint", "")
        body.append(section("Evaluation", table(
            ["set", "videos", "top-1", "top-5", "mean class accuracy", "checkpoint", "views"],
            [[ev.get("set", ""), ev.get("videos", ""), pct(ev.get("top1")), pct(ev.get("top5")),
              pct(ev.get("mean_class_accuracy")), ckpt, "x".join(map(str, ev.get("views", [])))]], id="evaluation"),
            id="evaluation-section"))
        body += evaluation_sections(ev, scores["class_names"] if scores else None)
        sheets = sheets_section(cfg, scores)
        if sheets is not None:
            body.append(sheets)
        n_classes = len(ev.get("per_class") or {})
        conf = file_uri(folder / "confusion.png") if n_classes <= CONFUSION_IMAGE_CLASSES else None
        if conf:
            body.append(section("Confusion matrix", details("show (rows: true class, normalised)",
                                                            img(conf, "confusion matrix")), id="confusion"))
    if metrics:
        rows = [[m["epoch"] + 1, f"{m.get('lr', 0):.4g}", f"{m['train_loss']:.4f}", pct(m.get("train_top1")),
                 f"{m['holdout_loss']:.4f}" if "holdout_loss" in m else "-", pct(m.get("holdout_top1")),
                 pct(m.get("holdout_top5")), seconds(m.get("train_seconds")),
                 f"{m['train_samples'] / m['train_seconds']:.1f}" if m.get("train_seconds") and "train_samples" in m
                 else "-"] for m in metrics]
        total = results.get("train_seconds")
        body.append(section("Speed and the epochs", tag("p", f"Training took {seconds(total)} in all (held-out "
                                                             f"passes included); the seconds and samples/s "
                                                             f"below are the training passes alone.", cls="muted"),
                            table(["epoch", "lr", "train loss", "train top-1", "held-out loss", "held-out top-1",
                                   "held-out top-5", "seconds", "samples/s"], rows, id="epochs"), id="speed"))
    data = results.get("data") or {}
    if data and all(isinstance(v, dict) for v in data.values()):
        keys = sorted({k for v in data.values() for k in v})
        body.append(section("Data", tag("p", "Videos each part of the run read, and why any were left out.",
                                         cls="muted"),
                            table(["part"] + keys, [[part] + [v.get(k, "") for k in keys] for part, v in data.items()]),
                            id="data"))
    if cfg_text:
        body.append(section("Resolved config (config.yaml)",
                            tag("p", join(["Train the same again: ", tag("code", command(
                                ["vislearn", "video", "train", "--config", str(folder / "config.yaml"),
                                 "out=NEW_FOLDER"]))])),
                            tag("pre", cfg_text), id="config"))
    return page(f"Run: {model} · {folder.name}", generated(folder), body)


# ----------------------------------------------------------------------------------- evaluation page

def evaluation_page(folder: Path, out: Path) -> str:
    results = read_json(folder / "results.json")
    scores = read_scores(folder / "scores.npz")
    models = results.get("models") or {}
    rows = [[tag("code", path), s.get("videos"), pct(s.get("top1")), pct(s.get("top5")),
             pct(s.get("mean_class_accuracy"))] for path, s in models.items()]
    final = results.get("ensemble") or next(iter(models.values()), {})
    if "ensemble" in results:
        e = results["ensemble"]
        rows.append([f"ensemble (weights {', '.join(f'{w:g}' for w in e.get('weights', []))})", e.get("videos"),
                     pct(e.get("top1")), pct(e.get("top5")), pct(e.get("mean_class_accuracy"))])
    body = [cards([("top-1", pct(final.get("top1"))), ("top-5", pct(final.get("top5"))),
                   ("mean class accuracy", pct(final.get("mean_class_accuracy"))), ("videos", final.get("videos")),
                   ("set", results.get("set", "")), ("views", results.get("views", ""))]),
            section("Models", table(["model", "videos", "top-1", "top-5", "mean class accuracy"], rows,
                                    id="evaluation"), id="models")]
    body += evaluation_sections(final, scores["class_names"] if scores else None)
    first = Path(next(iter(models), ""))
    _, cfg = read_config(first.parent) if str(first) else ("", {})
    cfg = {**cfg, **{k: results[k] for k in ("videos", "boxes") if results.get(k)}}
    sheets = sheets_section(cfg, scores)
    if sheets is not None:
        body.append(sheets)
    return page(f"Evaluation · {results.get('split') or folder.name}", generated(folder), body)


# ----------------------------------------------------------------------------------- few-shot page

def fewshot_chart(series: dict[str, dict[int, tuple[float, float]]], title: str):
    """Novel-class top-1 (%) against k: one line per model, the 95% CI as error bars."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    every_k = sorted({k for points in series.values() for k in points})
    step = 0.025 * ((every_k[-1] - every_k[0]) or 1) if every_k else 0
    for i, (name, points) in enumerate(series.items()):
        ks = sorted(points)
        shift = (i - (len(series) - 1) / 2) * step  # side by side, so that the intervals do not hide each other
        ax.errorbar([k + shift for k in ks], [points[k][0] for k in ks], yerr=[points[k][1] for k in ks], marker="o",
                    capsize=4, label=name)
    ax.set_xticks(every_k)
    ax.set_ylim(0, 100)
    ax.set_xlabel("examples per novel class (k)")
    ax.set_ylabel("novel top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fewshot_page(folder: Path, out: Path) -> str:
    results = read_json(folder / "fewshot_results.json")
    shots = results.get("shots") or {}
    rows = []
    for k, s in sorted(shots.items(), key=lambda kv: int(kv[0])):
        draws = s.get("draws", [])
        rows.append([f"{k}-shot", len(draws),
                     Raw(f'<span class="v">{100 * s["top1_mean"]:.1f} ± {100 * s["top1_ci95"]:.1f}</span>'),
                     Raw(f'<span class="v">{100 * s["top5_mean"]:.1f} ± {100 * s["top5_ci95"]:.1f}</span>'),
                     ", ".join(f"{100 * d['top1']:.1f}" for d in draws)])
    body = [cards([("base-class top-1", pct(results.get("base"))), ("fine-tuned", results.get("mode", "")),
                   ("k values", ", ".join(sorted(shots, key=int)) or "-")])]
    body.append(section("Novel classes", tag("p", "Top-1/top-5 (%) on the novel classes' validation videos after "
                                                  "fine-tuning on k videos per novel class; mean ± 95% confidence "
                                                  "interval (Student t) over the draws.", cls="muted"),
                        table(["k", "draws", "top-1", "top-5", "top-1 of each draw"], rows, cls="results",
                              id="results"), id="novel"))
    if shots:
        series = {"novel top-1": {int(k): (100 * s["top1_mean"], 100 * s["top1_ci95"]) for k, s in shots.items()}}
        body.append(section("Novel top-1 against k", img(figure_uri(fewshot_chart(series, "mean ± 95% CI over draws")),
                                                         "few-shot chart"), id="chart"))
    base = folder / "base"
    if (base / "results.json").is_file():
        res = read_json(base / "results.json")
        parts = [tag("p", join(["The base-class model: ", link(base / "report.html", out, "its run report")
                                if (base / "report.html").is_file() else tag("code", str(base)), "."]))]
        fig = figures.curves_figure(figures.read_metrics(base / "metrics.jsonl"))
        if fig is not None:
            parts.append(img(figure_uri(fig), "base model curves"))
        parts.append(table(["model", "parameters", "top-1", "top-5"],
                           [[res.get("model", ""), f"{res.get('parameters', 0):,}",
                             pct((res.get("evaluation") or {}).get("top1")),
                             pct((res.get("evaluation") or {}).get("top5"))]]))
        body.append(section("Base training", *parts, id="base"))
    return page(f"Few-shot · {folder.name}", generated(folder), body)


# ----------------------------------------------------------------------------------- table page

def _cell(mean: float, values: list[float], spread: float, what: str, best: bool) -> Raw:
    """The mean ± spread, each value below it; a single value alone (it has no spread)."""
    cls = f'v{" best" if best else ""}'
    if len(values) == 1:
        return Raw(f'<span class="{cls}">{mean:.1f}</span>')
    shown = " · ".join(f"{v:.1f}" for v in values)
    return Raw(f'<span class="{cls}">{mean:.1f} ± {spread:.1f}</span><br>'
               f'<small title="{esc(what)}">{esc(shown)}</small>')


def results_table(results: dict) -> tuple[Raw, list[str], list[str]]:
    """The paper-style table: mean ± std over seeds per split, few-shot base and novel mean ± 95% CI.
    Each cell: the mean ± spread (the figures of results.json), each seed's or draw's value below it."""
    rows = results.get("rows") or {}
    splits = [s for s in ("compositional", "shuffled") if any(s in r for r in rows.values())]
    shots = sorted({k for r in rows.values() for k in (r.get("fewshot") or {}).get("shots", {})}, key=int)
    header = ["model"] + [Raw(f"{s}<br>{m}") for s in splits for m in ("top-1", "top-5")]
    if shots:
        header += [Raw("few-shot<br>base top-1")] + [Raw(f"novel<br>{k}-shot top-1") for k in shots]
    cells: dict[str, list] = {}  # row -> [(mean, values, spread, what) or None per column]
    for key, r in rows.items():
        line: list = []
        for s in splits:
            for m in ("top1", "top5"):
                e = r.get(s)
                line.append((e[f"{m}_mean"], e[m], e[f"{m}_std"], "each seed") if e else None)
        few = r.get("fewshot")
        if shots and few:
            base = few["base_top1"]
            line.append((float(np.mean(base)), base, float(np.std(base, ddof=1)) if len(base) > 1 else 0.0,
                         "each base seed"))
            for k in shots:
                e = few["shots"].get(k)
                line.append((e["top1_mean"], e["top1"], e["top1_ci95"], "each (seed, draw)") if e else None)
        elif shots:
            line += [None] * (1 + len(shots))
        cells[key] = line
    columns = len(header) - 1
    best = [max((round(c[i][0], 1) for c in cells.values() if c[i]), default=None) for i in range(columns)]
    body = [[r.get("title", key)] + [_cell(*c, best=round(c[0], 1) == best[i]) if c else "-"
                                     for i, c in enumerate(cells[key])] for key, r in rows.items()]
    return table(header, body, cls="results", id="results"), splits, shots


def demo_command(results: dict) -> list[str] | None:
    args = results.get("args")
    if not args:
        return None
    argv = ["vislearn", "video", "table", "--data", args["data"], "--out", args["out"], "--videos", args["videos"],
            "--width", args["width"], "--height", args["height"], "--data-seed", args["data_seed"],
            "--noun-bias", args["noun_bias"], "--seeds", *args["seeds"], "--splits", *args["splits"],
            "--shots", *args["shots"], "--draws", args["draws"]]
    if args.get("base_classes"):
        argv += ["--base-classes", args["base_classes"]]
    if args.get("fewshot_seeds"):
        argv += ["--fewshot-seeds", *args["fewshot_seeds"]]
    if args.get("full"):
        argv.append("--full")
    if args.get("folds"):
        argv += ["--folds", args["folds"]]
    if args.get("no_tracked"):
        argv.append("--no-tracked")
    return [str(a) for a in argv + list(args.get("overrides") or [])]


def row_commands(folder: Path, key: str, results: dict, splits: list[str], data: Path | None) -> list[str]:
    """The command that makes each (split, seed) cell of a row again, into a new folder."""
    ensembles = results.get("ensembles")
    if ensembles is None:  # a results.json of an older demo: its ensembles are the demo's
        from .table_rows import ENSEMBLES

        ensembles = {k: v[1] for k, v in ENSEMBLES.items()}
    lines = []
    for split in splits:
        for seed in results.get("seeds", []):
            run = folder / split / f"seed{seed}"
            if key in ensembles:
                first, *more = ensembles[key]
                argv = ["vislearn", "video", "evaluate", "--checkpoint", run / first / "best.pt", "--ensemble",
                        *(run / m / "best.pt" for m in more), "--out", f"runs/again/{split}/seed{seed}/{key}"]
            elif (run / key / "config.yaml").is_file():
                argv = ["vislearn", "video", "train", "--config", run / key / "config.yaml",
                        f"out=runs/again/{split}/seed{seed}/{key}"]
            else:
                continue
            lines.append(command(argv))
    if data is not None:
        for seed in results.get("fewshot_seeds", []):
            run = folder / "fewshot" / f"seed{seed}" / key
            shots = sorted({k for r in results.get("rows", {}).values()
                            for k in (r.get("fewshot") or {}).get("shots", {})}, key=int)
            if (run / "config.yaml").is_file() and shots:
                lines.append(command(["vislearn", "video", "fewshot", "--config", run / "config.yaml", "--fewshot",
                                      data / "splits" / "fewshot", "--shots", *shots, "--draws",
                                      results.get("draws", 1), f"out=runs/again/fewshot/seed{seed}/{key}"]))
    return lines


def data_section(results: dict, data: Path | None) -> Raw:
    from vislearn.video.splits.stats import noun_bias_rows

    fp = results.get("data") or {}
    items = [("videos generated", fp.get("videos", "-")), ("frame size", f"{fp.get('width')}x{fp.get('height')}"),
             ("noun bias", fp.get("noun_bias", "-")), ("data seed", fp.get("seed", "-"))]
    parts = []
    if data is not None and data.is_dir():
        stats = dataset_counts(data)
        items = [("videos", stats["videos"]), ("classes", stats["classes"]), ("nouns", stats["nouns"])] + items[1:]
        if stats["splits"]:
            parts.append(table(["split", "classes", "training videos", "validation videos", "nouns"],
                               stats["splits"], id="splits"))
    parts.insert(0, cards(items))
    bias = results.get("noun_bias")
    if bias:
        header, rows = noun_bias_rows({"this data set (train + validation)": bias})
        parts += [tag("p", join(["How much the noun tells about the action (", tag("code", "vislearn video splits stats"),
                                 "): single-object templates, nouns with enough videos; in brackets the same with the "
                                 "nouns shuffled among the videos. Beside it, the figures measured on real "
                                 "Something-Something V2."]), cls="muted"),
                  table(header, rows, id="noun-bias")]
    return section("The data set", *parts, id="data")


def _records(path: Path | None) -> list[dict]:
    return read_json(path) if path is not None and path.is_file() else []


def _nouns(records: list[dict]) -> set[str]:
    return {p.lower() for r in records for p in r.get("placeholders", [])}


def split_counts(name: str, folder: Path) -> list | None:
    """One row of the splits table, the files found by the split reader (`split_layout.split_files`, which
    also knows the official release's spellings: training.json, val.json, ...); None without the folder
    or its labels."""
    from vislearn.common.errors import UserError
    from vislearn.video.data.split_layout import split_files

    if not folder.is_dir():
        return None
    try:
        files = split_files(folder, need_labels=False)
    except UserError as e:  # e.g. train.json and training.json both there: say so, keep the page
        return [name, "-", "-", "-", str(e)]
    if files.labels is None:
        return None
    tr, va = _records(files.sets.get("train")), _records(files.sets.get("validation"))
    return [name, len(read_json(files.labels)), len(tr), len(va),
            f"{len(_nouns(tr))} in training, {len(_nouns(va))} in validation"]


def dataset_counts(data: Path) -> dict:
    """Videos, classes and nouns of the synthetic set; per split: classes, videos and nouns per side."""
    from vislearn.video.data.split_layout import BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS, find_file
    from vislearn.video.data.ssv2 import find_metadata

    release = find_metadata(data)  # the whole set, under the SSv2 release's file names
    labels = read_json(release["labels"]) if "labels" in release else {}
    recs = _records(release.get("train")) + _records(release.get("validation"))
    rows = (split_counts(name, data / "splits" / name) for name in ("compositional", "shuffled"))
    splits = [row for row in rows if row is not None]
    few = data / "splits" / "fewshot"
    base_labels, novel_labels = find_file(few, BASE_LABELS), find_file(few, FINETUNE_LABELS)
    if base_labels is not None and novel_labels is not None:
        splits.append(["few-shot", f"{len(read_json(base_labels))} base, {len(read_json(novel_labels))} novel",
                       len(_records(find_file(few, BASE_TRAIN))), len(_records(find_file(few, BASE_VAL))), "-"])
    return {"videos": len(recs), "classes": len(labels), "nouns": len(_nouns(recs)), "splits": splits}


def table_page(folder: Path, out: Path) -> str:
    results = read_json(folder / "results.json")
    args = results.get("args") or {}
    data = Path(args.get("data") or (results.get("data") or {}).get("data") or "") if (
        args.get("data") or (results.get("data") or {}).get("data")) else None
    table_html, splits, shots = results_table(results)
    seeds = ", ".join(map(str, results.get("seeds", [])))
    n_models = len(results.get("rows", {}))
    body = [cards([("models", n_models), ("seeds", seeds or "-"), ("few-shot draws", results.get("draws", "-")
                                                                    if shots else "-"),
                   ("wall time", seconds(results.get("wall_seconds")))])]
    explain = (f"Top-1/top-5 (%) on the validation side of each split, mean ± standard deviation over seeds {seeds} "
               f"(each seed's value below it).")
    if shots:
        explain += (f" Few-shot: the base model's top-1 on the base classes (seeds "
                    f"{', '.join(map(str, results.get('fewshot_seeds', [])))}), then novel-class top-1 after training "
                    f"a new last layer on k videos per novel class, mean ± 95% confidence interval over the "
                    f"(seed, draw) pairs (each below it). Best of each column in blue.")
    parts = [tag("p", explain, cls="muted"), table_html]
    if results.get("findings"):
        parts += [tag("p", "The paper's findings, checked on these means:"),
                  tag("ul", join(tag("li", f.lstrip("- ")) for f in results["findings"]))]
    body.append(section("Results", *parts, id="table"))
    gap = file_uri(folder / "compositional_gap.png")
    if gap:
        body.append(section("Compositional gap", tag("p", "Each model's top-1 on the shuffled control (the same "
                                                          "videos, split at random: seen verb-noun pairs) against "
                                                          "the compositional split (unseen pairs).", cls="muted"),
                            img(gap, "compositional gap chart", 900), id="gap"))
    if shots:
        series, rows = {}, []
        for key, r in (results.get("rows") or {}).items():
            few = r.get("fewshot")
            if not few:
                continue
            series[r.get("title", key)] = {int(k): (e["top1_mean"], e["top1_ci95"]) for k, e in few["shots"].items()}
            rows.append([r.get("title", key), f"{np.mean(few['base_top1']):.1f}"]
                        + [Raw(f'{few["shots"][k]["top1_mean"]:.1f} ± {few["shots"][k]["top1_ci95"]:.1f} '
                               f'<small>({len(few["shots"][k]["top1"])} draws)</small>') if k in few["shots"] else "-"
                           for k in shots])
        body.append(section("Few-shot: novel classes", table(["model", "base top-1"] + [f"{k}-shot top-1 (95% CI)"
                                                                                        for k in shots], rows,
                                                             id="fewshot"),
                            img(figure_uri(fewshot_chart(series, "novel-class top-1, mean ± 95% CI over draws")),
                                "few-shot chart", 760), id="fewshot-section"))
    body.append(data_section(results, data))
    links = []
    for split in splits:
        for seed in results.get("seeds", []):
            run = folder / split / f"seed{seed}"
            found = [link(run / key / "report.html", out, key) for key in results.get("rows", {})
                     if (run / key / "report.html").is_file()]
            if found:
                links.append(tag("li", join([f"{split}, seed {seed}: "] + [join([a, " "]) for a in found])))
    for seed in results.get("fewshot_seeds", []):
        run = folder / "fewshot" / f"seed{seed}"
        found = [link(run / key / "report.html", out, key) for key in results.get("rows", {})
                 if (run / key / "report.html").is_file()]
        if found:
            links.append(tag("li", join([f"few-shot base, seed {seed}: "] + [join([a, " "]) for a in found])))
    repro = []
    cmd = demo_command(results)
    if cmd:
        repro += [tag("p", "The whole table (every run resumes where it stopped; finished runs are read back):"),
                  tag("pre", command(cmd))]
    for key, r in (results.get("rows") or {}).items():
        lines = row_commands(folder, key, results, splits, data)
        if lines:
            repro.append(details(f"{r.get('title', key)}: {len(lines)} command(s)", tag("pre", "\n".join(lines))))
    if links:
        repro += [tag("p", "Each run's own report (curves, per-class accuracy, confusions, videos):"),
                  tag("ul", join(links))]
    if repro:
        body.append(section("Reproduce", *repro, id="reproduce"))
    parts_s = results.get("seconds") or {}
    if parts_s:
        total = results.get("wall_seconds") or sum(parts_s.values())
        rows = [[k, seconds(v), pct(v / total if total else None, 0), bar(v / total if total else 0)]
                for k, v in parts_s.items()]
        body.append(section("Wall time", tag("p", f"{seconds(total)} in all, per part below: the demo call that wrote "
                                                  f"results.json (runs it found finished and read back cost it "
                                                  f"nothing).", cls="muted"),
                            table(["part", "time", "share", ""], rows, id="wall"), id="time"))
    title = "Something-Else on the synthetic benchmark" + (" (full table)" if args.get("full") else "")
    return page(title, generated(folder), body)
