"""`vislearn backbones claims --out DIR`: the claims of "Early Convolutions Help Transformers See Better"
(Xiao et al., NeurIPS 2021) at CPU scale, ViT_P-tiny against ViT_C-tiny (equal flops) on a small image set.

1. ViT_C has lower error than ViT_P with AdamW.
2. The gap between SGD and AdamW shrinks with ViT_C.
3. ViT_C is more stable: over random (lr, wd) samples, its error distribution function (EDF) is tighter.

The protocol (the test split is never used to choose anything):
- search: for each (model, optimizer), a small lr x wd grid at seed 0 on the full schedule, scored by the val
  error of its last epoch;
- final: the chosen (lr, wd) of each (model, optimizer) with seeds 1, 2, ... (seed 0 is the chosen search run);
  the table reports the test error of the last epoch, mean +- sample standard deviation over the seeds;
- stability: `samples` random (lr, wd) per model, log-uniform over a wide range (the same samples for both
  models), AdamW (and SGD with `--budget` presets that afford it), short schedule; the EDF of their val error.
Each run is a subfolder (`vislearn backbones train`'s run folder); a killed sweep continues where it stopped
when the same command is run again (finished runs are skipped, a killed run resumes from its checkpoint).
Outputs in DIR: results.md and results.json (the table), edf.png (the EDF plot), plan.json (every run).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import math
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, positive_int, run_main
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, write_text
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder

MODELS = ("vit_p_tiny", "vit_c_tiny")
OPTIMIZERS = ("adamw", "sgd")
# the paper (Table/Figure of optimizer sensitivity, 4GF models, 50 epochs): top-1 error (%)
PAPER = {("vit_p", "adamw"): 27.7, ("vit_p", "sgd"): 33.0, ("vit_c", "adamw"): 24.0, ("vit_c", "sgd"): 24.7}


@dataclass(frozen=True)
class Budget:
    """How much of everything: images, epochs, grid and samples (one preset per `--budget`)."""

    data: str = "objects"
    img_size: int = 64
    batch_size: int = 64
    train_images: int = 4000           # search and final runs (a fixed subset of the train split)
    val_images: int = 1000             # every run's val (a fixed subset of the val split)
    final_epochs: int = 6              # search and final runs
    search_grid: dict = field(default_factory=lambda: {"adamw": ((2.5e-4, 5e-4, 1.5e-3), (0.05, 0.25)),
                                                       "sgd": ((0.005, 0.02, 0.08, 0.3), (1e-4, 1e-3))})
    seeds: int = 3
    samples: int = 16                  # stability: random (lr, wd) per model and optimizer
    stability_optimizers: tuple = ("adamw",)
    stability_epochs: int = 3
    stability_train_images: int = 2000
    # log-uniform ranges of the stability samples: (lr range, wd range)
    ranges: dict = field(default_factory=lambda: {"adamw": ((10 ** -4.5, 10 ** -1.5), (1e-3, 1.0)),
                                                  "sgd": ((10 ** -3, 10 ** 0.5), (1e-5, 1e-2))})

    def warmup(self, epochs: int) -> float:
        return max(1.0, round(epochs / 6))


BUDGETS = {
    "full": Budget(),
    "sgd-stability": Budget(stability_optimizers=("adamw", "sgd")),
    "smoke": Budget(data="digits", img_size=32, train_images=300, val_images=100, final_epochs=2,
                    search_grid={"adamw": ((1e-3,), (0.05,)), "sgd": ((0.03, 0.1), (1e-4,))}, seeds=2, samples=2,
                    stability_epochs=1, stability_train_images=200),
}


@dataclass(frozen=True)
class Run:
    name: str           # subfolder of the sweep
    phase: str          # search | final | stability
    model: str
    optimizer: str
    lr: float
    wd: float
    seed: int
    epochs: int
    train_images: int

    def config(self, budget: Budget, root: Path, data: str | None = None) -> dict:
        return {"backbone": self.model, "data": data or budget.data, "out": str(root / self.name),
                "img_size": budget.img_size, "optimizer": self.optimizer, "lr": self.lr, "wd": self.wd,
                "epochs": self.epochs, "warmup_epochs": budget.warmup(self.epochs), "batch_size": budget.batch_size,
                "train_images": self.train_images, "val_images": budget.val_images, "seed": self.seed,
                "threads": 1}


def search_runs(b: Budget) -> list[Run]:
    runs = []
    for opt in OPTIMIZERS:
        lrs, wds = b.search_grid[opt]
        for model in MODELS:
            for lr in lrs:
                for wd in wds:
                    runs.append(Run(f"search/{model}_{opt}_lr{lr:g}_wd{wd:g}", "search", model, opt, lr, wd, 0,
                                    b.final_epochs, b.train_images))
    return runs


def final_runs(b: Budget, model: str, opt: str, lr: float, wd: float) -> list[Run]:
    """Seeds 1, 2, ... of the chosen setting (seed 0 is the search run itself: the same schedule)."""
    return [Run(f"final/{model}_{opt}_lr{lr:g}_wd{wd:g}_seed{s}", "final", model, opt, lr, wd, s, b.final_epochs,
                b.train_images)
            for s in range(1, b.seeds)]


def stability_runs(b: Budget) -> list[Run]:
    runs = []
    for opt in b.stability_optimizers:
        (lr_lo, lr_hi), (wd_lo, wd_hi) = b.ranges[opt]
        rng = np.random.default_rng(2021)  # the same samples for both models (paired)
        samples = [(float(math.exp(rng.uniform(math.log(lr_lo), math.log(lr_hi)))),
                    float(math.exp(rng.uniform(math.log(wd_lo), math.log(wd_hi))))) for _ in range(b.samples)]
        for i, (lr, wd) in enumerate(samples):
            for model in MODELS:
                runs.append(Run(f"stability/{model}_{opt}_{i:02d}", "stability", model, opt, float(f"{lr:.3g}"),
                                float(f"{wd:.3g}"), 0, b.stability_epochs, b.stability_train_images))
    return runs


# ----------------------------------------------------------------------------- running (worker processes)
_DATA: dict | None = None


def _init_worker(source: str, img_size: int, nice: int) -> None:
    global _DATA
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    if nice > os.nice(0):  # the niceness to run at (not an increment: a sweep started under `nice` stays there)
        os.nice(nice - os.nice(0))
    from .imagesets import load_images  # noqa: PLC0415

    _DATA = {}
    for split in ("train", "val", "test"):
        try:
            _DATA[split] = load_images(source, split, size=img_size, seed=0)
        except UserError:
            if split != "test":
                raise


def _train_one(cfg: dict) -> dict:
    from .train import TrainConfig, fit  # noqa: PLC0415

    Path(cfg["out"]).mkdir(parents=True, exist_ok=True)
    with open(Path(cfg["out"]) / "log.txt", "a") as f:
        def log(*args, **kwargs):
            print(*args, file=f, flush=True)
        return fit(TrainConfig(**cfg), data=_DATA, resume=True, log=log, progress=False)


def done(root: Path, run: Run) -> dict | None:
    path = root / run.name / "results.json"
    return read_json(path) if path.exists() else None


def choose(results: dict[Run, dict]) -> tuple[float, float, float]:
    """(lr, wd, val error) of the search run with the lowest final val error (ties: the smaller lr)."""
    best = min(results.items(), key=lambda kv: (kv[1]["final"]["val_error"], kv[0].lr, kv[0].wd))
    return best[0].lr, best[0].wd, best[1]["final"]["val_error"]


def sweep(b: Budget, root: Path, workers: int, nice: int, data: str | None, log=print) -> dict[Run, dict]:
    """Run everything not finished yet, `workers` at a time; finals start once their search is complete."""
    results: dict[Run, dict] = {}
    search = search_runs(b)
    stability = stability_runs(b)
    for run in search + stability:
        r = done(root, run)
        if r is not None:
            results[run] = r
    queued_finals: set[tuple[str, str]] = set()
    finals: list[Run] = []

    def ready_finals() -> list[Run]:
        new = []
        for opt in OPTIMIZERS:
            for model in MODELS:
                group = [r for r in search if r.model == model and r.optimizer == opt]
                if (model, opt) in queued_finals or not all(r in results for r in group):
                    continue
                lr, wd, _ = choose({r: results[r] for r in group})
                queued_finals.add((model, opt))
                for run in final_runs(b, model, opt, lr, wd):
                    r = done(root, run)
                    if r is not None:
                        results[run] = r
                    else:
                        new.append(run)
                    finals.append(run)
        return new

    todo = ready_finals() + [r for r in search if r not in results] + [r for r in stability if r not in results]
    total = len(todo) + sum(1 for _ in results)
    log(f"{len(results)} runs finished before, {len(todo)} to run now ({workers} at a time)")
    if not todo:
        ready_finals()
        return results
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(data or b.data, b.img_size, nice)) as pool:
        running: dict[cf.Future, Run] = {}
        while todo or running:
            while todo and len(running) < workers:
                run = todo.pop(0)
                running[pool.submit(_train_one, run.config(b, root, data))] = run
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                run = running.pop(fut)
                results[run] = res = fut.result()
                fin = res["final"]
                log(f"[{len(results)}/{total} {time.perf_counter() - t0:.0f}s] {run.name}: val error "
                    f"{fin['val_error']:.4f}" + (f", test {fin['test_error']:.4f}" if fin.get("test_error") is not None
                                                 else "") + (" (diverged)" if res.get("diverged") else ""))
            new = ready_finals()
            todo = new + todo  # finals first: they are the headline
            total += len(new)
    return results


# ----------------------------------------------------------------------------- the table and the plot
def mean_std(xs: list[float]) -> tuple[float, float]:
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def summarise(b: Budget, results: dict[Run, dict]) -> dict:
    rows, gaps = [], {}
    for model in MODELS:
        for opt in OPTIMIZERS:
            search = {r: v for r, v in results.items() if r.phase == "search" and r.model == model and r.optimizer == opt}
            if not search:
                continue
            lr, wd, val = choose(search)
            chosen = [v for r, v in search.items() if (r.lr, r.wd) == (lr, wd)]
            finals = chosen + [v for r, v in results.items() if r.phase == "final" and r.model == model
                               and r.optimizer == opt and (r.lr, r.wd) == (lr, wd)]
            if len(finals) < b.seeds:
                continue
            test = [v["final"]["test_error"] * 100 for v in finals]
            best_test = [v["best"]["test_error"] * 100 for v in finals]
            vals = [v["final"]["val_error"] * 100 for v in finals]
            m, s = mean_std(test)
            rows.append({"model": model, "optimizer": opt, "lr": lr, "wd": wd, "search_val_error": val * 100,
                         "test_error": test, "test_mean": m, "test_std": s, "val_mean": statistics.fmean(vals),
                         "best_val_epoch_test_mean": statistics.fmean(best_test),
                         "paper": PAPER[(model[:5], opt)]})
    by = {(r["model"], r["optimizer"]): r for r in rows}
    for model in MODELS:
        if (model, "adamw") in by and (model, "sgd") in by:
            a, s = by[(model, "adamw")], by[(model, "sgd")]
            gaps[model] = {"gap": s["test_mean"] - a["test_mean"],
                           "gap_std": math.hypot(a["test_std"], s["test_std"]),
                           "paper_gap": s["paper"] - a["paper"]}
    search = [{"model": r.model, "optimizer": r.optimizer, "lr": r.lr, "wd": r.wd,
               "val_error": v["final"]["val_error"] * 100} for r, v in results.items() if r.phase == "search"]
    stability = {}
    for opt in b.stability_optimizers:
        for model in MODELS:
            errs = sorted(v["final"]["val_error"] * 100 for r, v in results.items()
                          if r.phase == "stability" and r.model == model and r.optimizer == opt)
            if errs:
                q = [float(v) for v in np.percentile(errs, [10, 25, 50, 75, 90])]
                stability[f"{model}_{opt}"] = {
                    "errors": errs, "n": len(errs), "min": errs[0], "p10": q[0], "p25": q[1], "median": q[2],
                    "p75": q[3], "p90": q[4], "iqr": q[3] - q[1],
                    "diverged": sum(1 for r, v in results.items() if r.phase == "stability" and r.model == model
                                    and r.optimizer == opt and v.get("diverged"))}
    claims = {}
    if ("vit_p_tiny", "adamw") in by and ("vit_c_tiny", "adamw") in by:
        p, c = by[("vit_p_tiny", "adamw")], by[("vit_c_tiny", "adamw")]
        claims["1_vit_c_lower_error_adamw"] = {"holds": bool(c["test_mean"] < p["test_mean"]),
                                               "difference": p["test_mean"] - c["test_mean"],
                                               "beyond_seed_noise": bool(p["test_mean"] - c["test_mean"] >
                                                                         math.hypot(p["test_std"], c["test_std"]))}
    if len(gaps) == 2:
        gp, gc = gaps["vit_p_tiny"]["gap"], gaps["vit_c_tiny"]["gap"]
        claims["2_gap_shrinks_with_vit_c"] = {"holds": bool(gc < gp), "gap_p": gp, "gap_c": gc,
                                              "beyond_seed_noise": bool(gp - gc > math.hypot(
                                                  gaps["vit_p_tiny"]["gap_std"], gaps["vit_c_tiny"]["gap_std"]))}
    for opt in b.stability_optimizers:
        sp, sc = stability.get(f"vit_p_tiny_{opt}"), stability.get(f"vit_c_tiny_{opt}")
        if sp and sc:
            claims[f"3_stability_{opt}"] = {"holds": bool(sc["iqr"] < sp["iqr"] and sc["median"] < sp["median"]),
                                            "median_p": sp["median"], "median_c": sc["median"],
                                            "iqr_p": sp["iqr"], "iqr_c": sc["iqr"]}
    return {"budget": dataclasses.asdict(b), "rows": rows, "gaps": gaps, "search": search, "stability": stability,
            "claims": claims}


def flops_ratio(b: Budget, num_classes: int | None = None) -> float:
    from .registry import measure  # noqa: PLC0415

    kw = {"img_size": b.img_size} | ({"num_classes": num_classes} if num_classes else {})
    return measure("vit_c_tiny", **kw)[1] / measure("vit_p_tiny", **kw)[1]


def markdown(summary: dict) -> str:
    b = summary["budget"]
    lines = [f"ViT_P-tiny vs ViT_C-tiny on `{b['data']}` at {b['img_size']} px (C/P flops {summary['flops_ratio']:.3f}); "
             f"{b['train_images']} train images, {b['final_epochs']} epochs, batch {b['batch_size']}; "
             f"test error (%) of the last epoch, mean ± std over {b['seeds']} seeds; lr and wd chosen on val "
             f"({' and '.join(f'{o}: {len(g[0])} lr x {len(g[1])} wd' for o, g in b['search_grid'].items())} at "
             f"seed 0; the chosen search run is seed 0 of the {b['seeds']}).", "",
             "| model | optimizer | lr | wd | test error (%) | val error (%) | test at best-val epoch (%) | paper, 4GF (%) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['lr']:g} | {r['wd']:g} | {r['test_mean']:.2f} ± "
                     f"{r['test_std']:.2f} | {r['val_mean']:.2f} | {r['best_val_epoch_test_mean']:.2f} | {r['paper']:.1f} |")
    if summary["gaps"]:
        lines += ["", "| model | SGD − AdamW gap (test error, points) | paper gap |", "|---|---:|---:|"]
        for model, g in summary["gaps"].items():
            lines.append(f"| {model} | {g['gap']:+.2f} ± {g['gap_std']:.2f} | {g['paper_gap']:+.1f} |")
    if summary["search"]:
        chosen = {(r["model"], r["optimizer"], r["lr"], r["wd"]) for r in summary["rows"]}
        width = max(sum(1 for r in summary["search"] if (r["model"], r["optimizer"]) == (m, o))
                    for m in MODELS for o in OPTIMIZERS)
        lines += ["", "Search (seed 0, val error of the last epoch, %; * chosen):", "",
                  "| model | optimizer | " + " | ".join(["lr, wd: val error"] * width) + " |", "|---|---|" + "---|" * width]
        for model in MODELS:
            for opt in OPTIMIZERS:
                cells = [f"{r['lr']:g}, {r['wd']:g}: {r['val_error']:.1f}"
                         + ("*" if (model, opt, r["lr"], r["wd"]) in chosen else "")
                         for r in sorted(summary["search"], key=lambda r: (r["lr"], r["wd"]))
                         if r["model"] == model and r["optimizer"] == opt]
                if cells:
                    lines.append(f"| {model} | {opt} | " + " | ".join(cells) + " |")
    if summary["stability"]:
        lines += ["", "Stability: val error (%) over random (lr, wd) samples (log-uniform; the same samples for both)",
                  "", "| model, optimizer | runs | diverged | min | 25% | median | 75% | 90% | IQR |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for k, s in summary["stability"].items():
            lines.append(f"| {k} | {s['n']} | {s['diverged']} | {s['min']:.1f} | {s['p25']:.1f} | {s['median']:.1f} | "
                         f"{s['p75']:.1f} | {s['p90']:.1f} | {s['iqr']:.1f} |")
    if summary["claims"]:
        lines += ["", "Claims:"]
        for k, c in summary["claims"].items():
            extra = ", ".join(f"{n} {v:.2f}" if isinstance(v, float) else f"{n} {v}" for n, v in c.items() if n != "holds")
            lines.append(f"- {k}: {'holds' if c['holds'] else 'does not hold'} ({extra})")
    return "\n".join(lines) + "\n"


def plot_edf(summary: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    opts = sorted({k.rsplit("_", 1)[1] for k in summary["stability"]})
    fig, axes = plt.subplots(1, len(opts), figsize=(4.2 * len(opts), 3.4), squeeze=False)
    colors = {"vit_p_tiny": "tab:blue", "vit_c_tiny": "tab:red"}
    for ax, opt in zip(axes[0], opts):
        for model in MODELS:
            s = summary["stability"].get(f"{model}_{opt}")
            if not s:
                continue
            errs = np.sort(s["errors"])
            frac = np.arange(1, len(errs) + 1) / len(errs)
            ax.step(np.concatenate([[0], errs]), np.concatenate([[0], frac]), where="post", color=colors[model],
                    label=f"{'ViT_C' if 'vit_c' in model else 'ViT_P'} (median {s['median']:.1f})")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("val error (%)")
        ax.set_ylabel("cumulative prob.")
        ax.set_title(f"{opt}: {summary['stability'][f'vit_p_tiny_{opt}']['n']} random (lr, wd)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn backbones claims", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the sweep folder (one subfolder per run)")
    p.add_argument("--overwrite", action="store_true", help="replace files of the sweep's names in --out that "
                   "vislearn did not write")
    p.add_argument("--budget", default="full", choices=tuple(BUDGETS),
                   help="full: ~100 core-minutes (2 processes x 1 thread, ~50 min); sgd-stability: full + SGD "
                        "stability samples; smoke: a minute on digits (default %(default)s)")
    p.add_argument("--data", default=None, help="another image set than the budget's (objects | digits | PATH)")
    p.add_argument("--workers", type=positive_int, default=2, help="training processes at once, 1 thread each")
    p.add_argument("--nice", type=int, default=10, help="niceness the training processes run at, at least (default %(default)s)")
    p.add_argument("--plan", action="store_true", help="print the runs and their images, train nothing")
    return p


def work(args: argparse.Namespace) -> int:
    b = BUDGETS[args.budget]
    root = Path(args.out)
    plan = search_runs(b) + stability_runs(b)
    n_final = len(MODELS) * len(OPTIMIZERS) * (b.seeds - 1)
    images = sum(r.epochs * r.train_images for r in plan) + n_final * b.final_epochs * b.train_images
    if args.plan:
        for r in plan:
            print(f"{r.name}  lr {r.lr:g} wd {r.wd:g}  {r.epochs} epochs x {r.train_images} images")
        print(f"+ {n_final} final runs (seeds 1..{b.seeds - 1}), {b.final_epochs} epochs x {b.train_images} images")
        print(f"{images / 1e6:.2f} M training images in all (~{images / 280 / 60:.0f} core-minutes at 280 images/s)")
        return 0
    claim_folder(root, kind="backbones claims", lock=True, overwrite=args.overwrite)
    write_json(root / "plan.json", {"budget": args.budget, "data": args.data or b.data,
                                    "runs": [dataclasses.asdict(r) for r in plan]}, indent=1)
    results = sweep(b, root, args.workers, args.nice, args.data, log=lambda m: print(m, flush=True))
    summary = summarise(dataclasses.replace(b, data=args.data or b.data), results)
    classes = next(iter(results.values()))["classes"] if results else None
    summary["flops_ratio"] = flops_ratio(b, classes)
    write_json(root / "results.json", summary, indent=1)
    text = markdown(summary)
    write_text(root / "results.md", text)
    if summary["stability"]:
        plot_edf(summary, root / "edf.png")
    print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: work(args))


if __name__ == "__main__":
    sys.exit(main())
