"""Human-readable outputs of a run: curves, per-class accuracy, confusion matrix, text tables, and
`vislearn video report PATH [--out report.html]`: one self-contained HTML page per output folder.

PATH is a run folder of `actions.train`, the demo's output folder (`make demo`, `make table-full`),
an output folder of `actions.fewshot` or the `--out` folder of `actions.evaluate`; the page goes to
PATH/report.html unless --out says otherwise. The page needs nothing but a browser: the plots are
PNG data URIs, there is no script and nothing is fetched (see `actions.report_pages`). The demo,
`actions.train`, `actions.fewshot` and `actions.evaluate --out` write it at the end of their run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from vislearn.common.cli import Parser, command  # noqa: E402
from vislearn.common.errors import UserError  # noqa: E402
from vislearn.common.files import atomic_path, write_text  # noqa: E402


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
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def format_table(rows: list[list], header: list[str]) -> str:
    """A plain-text table (also valid Markdown)."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


# --------------------------------------------------------------------------- the HTML report
def page_kind(folder: Path) -> str:
    """Which page a folder gets: table (the demo), fewshot, evaluation or run."""
    from vislearn.common.jsonio import read_json

    if (folder / "fewshot_results.json").is_file():
        return "fewshot"
    if (folder / "results.json").is_file():
        results = read_json(folder / "results.json")
        if isinstance(results, dict):
            if "rows" in results:
                return "table"
            if "models" in results:
                return "evaluation"
            if "model" in results or "evaluation" in results:  # a training run, a few-shot stage
                return "run"
    raise UserError(f"{folder}: not a run, demo, few-shot or evaluation folder (no results.json of "
                    f"vislearn video train, vislearn video table or vislearn video evaluate, no fewshot_results.json)")


def write_report(path: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the HTML page of the output folder `path` (default `path`/report.html, always refreshed);
    returns where. Another existing `out` is replaced only with `overwrite`."""
    from vislearn.common.files import new_output_file, output_file

    from . import report_pages

    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder}: not found")
    if not folder.is_dir():
        raise UserError(f"{folder}: is a file, expected an output folder (run, demo, few-shot or evaluation)")
    if out:  # the page reads the folder's results, metrics, configs and figures: none may become the page
        target = new_output_file(out, [p for p in folder.rglob("*") if p.suffix != ".html" and p.is_file()], overwrite)
    else:
        target = output_file(folder / "report.html", "--out")
    kind = page_kind(folder)
    build = {"table": report_pages.table_page, "run": report_pages.run_page, "fewshot": report_pages.fewshot_page,
             "evaluation": report_pages.evaluation_page}[kind]
    text = build(folder, target)
    write_text(target, text)
    return target


def report_at_end(folder: str | Path, log=print) -> Path | None:
    """The end-of-run hook of the commands: write folder/report.html, and say so. A report that
    cannot be made is a warning: the run's results are already written and stay valid."""
    try:
        path = write_report(folder)
    except Exception as e:  # noqa: BLE001 - never lose a finished run to its report
        print(f"warning: no report.html for {folder}: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    log(f"report: {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video report", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="a run, demo, few-shot or evaluation output folder")
    p.add_argument("--out", help="the HTML file to write (default PATH/report.html)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def _report(args) -> int:
    print(f"wrote {write_report(args.path, args.out, args.overwrite)}")
    return 0


main = command(build_parser, _report)


if __name__ == "__main__":
    sys.exit(main())
