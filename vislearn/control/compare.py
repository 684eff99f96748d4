"""`vislearn control compare`: the MVP papers' encoder comparison at our scale — success rate of behaviour cloning
per task x encoder x number of demonstrations, over seeds, as one table, one plot and one report page.

Every cell is an ordinary `bc` run folder (RUN/cells/TASK/ENCODER/nN-sS) evaluated on the same evaluation seeds;
cells already finished are kept, so a killed comparison continues where it stopped, and a larger grid (another
encoder, more demonstrations) reuses the cells it shares with a smaller one. The demonstrations of a task are
recorded once (DEMOS/TASK, the largest count) and every cell trains on their first N."""
from __future__ import annotations

import argparse
import html
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, save_png, write_text
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder
from vislearn.common.validate import config_chain

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "control" / "compare.yaml"
KIND = "control compare"


@dataclass
class Grid:
    encoders: dict[str, str] = field(default_factory=dict)  # label -> spec ("{seed}" -> the seed)
    tasks: list[str] = field(default_factory=list)
    num_demos: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    eval_episodes: int = 20
    eval_num_envs: int = 2
    size: int = 96
    bc: list[str] = field(default_factory=list)

    def spec(self, label: str, seed: int) -> str:
        return self.encoders[label].replace("{seed}", str(seed))


def _ints(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not out:
        raise UserError(f"{what}: empty")
    return out


def load_grid(path: str | None, args: argparse.Namespace) -> Grid:
    from .encoders import parse_spec
    from .envs.tasks import get_task

    grid = Grid()
    for file, values in config_chain(path or DEFAULT_CONFIG):
        unknown = set(values) - set(Grid.__dataclass_fields__) - {"base"}
        if unknown:
            raise UserError(f"{file}: unknown setting {sorted(unknown)[0]!r}; expected {', '.join(Grid.__dataclass_fields__)}")
        for k, v in values.items():
            if k != "base":
                setattr(grid, k, v)
    if args.encoders:
        chosen = {}
        for item in args.encoders.split(","):
            label, _, spec = item.partition("=")
            if not spec:  # a bare label of the config, or a bare spec
                spec = grid.encoders.get(label, label)
                label = label if label in grid.encoders else parse_spec(spec.replace("{seed}", "0")).slug
            chosen[label] = spec
        grid.encoders = chosen
    if args.tasks:
        grid.tasks = [t for t in args.tasks.split(",") if t]
    if args.num_demos:
        grid.num_demos = _ints(args.num_demos, "--num-demos")
    if args.seeds:
        grid.seeds = _ints(args.seeds, "--seeds")
    if args.eval_episodes is not None:
        grid.eval_episodes = args.eval_episodes
    grid.bc = list(grid.bc or []) + list(args.overrides)
    for t in grid.tasks:
        get_task(t, where="--tasks")
    for label, spec in grid.encoders.items():
        parse_spec(spec.replace("{seed}", "0"), where=f"encoder {label}")
    if not (grid.tasks and grid.encoders and grid.num_demos and grid.seeds):
        raise UserError("compare: tasks, encoders, num_demos and seeds must each name at least one")
    if min(grid.num_demos) < 1 or grid.eval_episodes < 1:
        raise UserError("compare: num_demos and eval_episodes must be at least 1")
    return grid


def cell_dir(out: Path, task: str, label: str, n: int, seed: int) -> Path:
    return out / "cells" / task / label / f"n{n}-s{seed}"


def finished(folder: Path, episodes: int) -> dict | None:
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        res = read_json(path)
    except UserError:
        return None
    ev = res.get("eval") if isinstance(res, dict) else None
    return res if isinstance(ev, dict) and ev.get("episodes") == episodes else None


def run_grid(grid: Grid, out: Path, demos_root: Path, log=print, report_only: bool = False) -> dict:
    from .bc import DEFAULT_CONFIG as BC_CONFIG, load_config, train_bc
    from .demos import record_demos
    from .envs import RenderSettings

    render = RenderSettings(size=grid.size)
    for task in [] if report_only else grid.tasks:
        record_demos(task, max(grid.num_demos), demos_root / task, render=render, num_envs=grid.eval_num_envs,
                     log=log)
    cells = []
    total = len(grid.tasks) * len(grid.encoders) * len(grid.num_demos) * len(grid.seeds)
    for task in grid.tasks:
        for label in grid.encoders:
            for n in grid.num_demos:
                for seed in grid.seeds:
                    folder = cell_dir(out, task, label, n, seed)
                    res = finished(folder, grid.eval_episodes)
                    if res is None and report_only:
                        continue
                    if res is None:
                        t0 = time.perf_counter()
                        cfg = load_config(BC_CONFIG, [*grid.bc, f"demos={demos_root / task}", f"task={task}",
                                                 f"encoder={grid.spec(label, seed)}", f"num_demos={n}", f"seed={seed}",
                                                 f"eval_episodes={grid.eval_episodes}",
                                                 f"eval_num_envs={grid.eval_num_envs}"])
                        res, _ = train_bc(cfg, folder, log=lambda *a, **k: None)
                        log(f"[{len(cells) + 1}/{total}] {task} {label} n={n} seed={seed}: success "
                            f"{100 * res['eval']['success_rate']:.0f}% ({time.perf_counter() - t0:.0f} s)")
                    cells.append({"task": task, "encoder": label, "spec": grid.spec(label, seed), "num_demos": n,
                                  "seed": seed, "success_rate": res["eval"]["success_rate"],
                                  "mean_length": res["eval"]["mean_length"], "run": str(folder)})
    return summarise(grid, cells)


def summarise(grid: Grid, cells: list[dict]) -> dict:
    table = {}
    for task in grid.tasks:
        for label in grid.encoders:
            for n in grid.num_demos:
                rates = [c["success_rate"] for c in cells if (c["task"], c["encoder"], c["num_demos"]) == (task, label, n)]
                if rates:
                    table[f"{task}|{label}|{n}"] = {"mean": float(np.mean(rates)), "std": float(np.std(rates)),
                                                    "seeds": len(rates)}
    return {"grid": {k: getattr(grid, k) for k in Grid.__dataclass_fields__}, "cells": cells, "table": table}


def markdown(summary: dict) -> str:
    g = summary["grid"]
    head = "| task | encoder | " + " | ".join(f"{n} demos" for n in g["num_demos"]) + " |"
    lines = [head, "|" + "---|" * (2 + len(g["num_demos"]))]
    for task in g["tasks"]:
        for label in g["encoders"]:
            row = []
            for n in g["num_demos"]:
                t = summary["table"].get(f"{task}|{label}|{n}")
                if t is None:
                    row.append("")
                elif t["seeds"] < len(g["seeds"]):  # a cell measured with fewer seeds says so
                    row.append(f"{100 * t['mean']:.0f} ({t['seeds']} seed{'s' if t['seeds'] > 1 else ''})")
                else:
                    row.append(f"{100 * t['mean']:.0f} ± {100 * t['std']:.0f}")
            lines.append(f"| {task} | {label} | " + " | ".join(row) + " |")
    return "\n".join(lines) + (f"\n\nSuccess rate (%), mean ± std over seeds {g['seeds']}; {g['eval_episodes']} "
                               "evaluation episodes per run (seeds 0..N-1, never a demonstration's).\n")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = summary["grid"]
    fig, axes = plt.subplots(1, len(g["tasks"]), figsize=(3.6 * len(g["tasks"]), 3.2), squeeze=False)
    for ax, task in zip(axes[0], g["tasks"]):
        for i, label in enumerate(g["encoders"]):  # one colour per encoder on every panel
            pts = [(n, summary["table"][f"{task}|{label}|{n}"]) for n in g["num_demos"]
                   if f"{task}|{label}|{n}" in summary["table"]]
            if pts:
                xs = [p[0] for p in pts]
                ax.errorbar(xs, [100 * p[1]["mean"] for p in pts], yerr=[100 * p[1]["std"] for p in pts],
                            marker="o", capsize=3, label=label, color=f"C{i % 10}")
        ax.set_xscale("log")
        ax.set_xticks(g["num_demos"], [str(n) for n in g["num_demos"]])
        ax.set_ylim(-5, 105)
        ax.set_title(task)
        ax.set_xlabel("demonstrations")
    axes[0][0].set_ylabel("success (%)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def stills(grid: Grid, out: Path) -> list[Path]:
    """One frame per task of the scripted expert mid-episode, at the policies' render settings."""
    from .envs import RenderSettings, SawyerTaskEnv, ScriptedExpert
    from .envs.tasks import EVAL_SEEDS

    from PIL import Image

    paths = []
    for task in grid.tasks:
        env, expert = SawyerTaskEnv(task, render=RenderSettings(size=grid.size)), ScriptedExpert(task)
        obs, _ = env.reset(seed=EVAL_SEEDS)
        for _ in range(20):
            obs, *_ = env.step(expert(obs["state"])[0])
        path = out / f"still_{task}.png"
        save_png(path, np.asarray(Image.fromarray(obs["pixels"]).resize((192, 192), Image.NEAREST)))
        env.close()
        paths.append(path)
    return paths


def report(summary: dict, out: Path, pictures: list[Path]) -> Path:
    md = markdown(summary)
    write_text(out / "results.md", md)
    rows = [line.strip("|").split("|") for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    table = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                                     for c in r) + "</tr>" for i, r in enumerate(rows))
    imgs = "".join(f"<figure style='display:inline-block'><img src='{p.name}'><figcaption>{html.escape(p.stem[6:])}"
                   "</figcaption></figure>" for p in pictures)
    page = out / "index.html"
    write_text(page, "<!doctype html><meta charset='utf-8'><title>Control: encoder comparison</title>"
               "<h1>Behaviour cloning from pixels with frozen encoders (MVP)</h1>"
               f"<p>Success rate (%), mean ± std over seeds; {summary['grid']['eval_episodes']} evaluation episodes "
               f"per run.</p><table border=1 cellpadding=3>{table}</table><h2>Success against demonstrations</h2>"
               "<img src='success.png' style='max-width:100%'><h2>The tasks (what the policies see)</h2>" + imgs)
    return page


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control compare",
               description="The encoder comparison of the MVP papers: behaviour cloning per task x encoder x number of "
                           "demonstrations x seed, evaluated on the same seeded episodes; one table (results.md), "
                           "one plot (success.png), one report page (index.html). Finished cells are kept: run it "
                           "again to continue. Defaults: configs/control/compare.yaml.")
    p.add_argument("--out", required=True, help="comparison folder (its cells are bc run folders)")
    p.add_argument("--demos-root", required=True, help="demonstrations, one folder per task (made when missing)")
    p.add_argument("--config", default=None, help="YAML grid (default configs/control/compare.yaml)")
    p.add_argument("--encoders", default=None, help="comma-separated labels of the config, label=SPEC or SPEC")
    p.add_argument("--tasks", default=None, help="comma-separated tasks")
    p.add_argument("--num-demos", default=None, help="comma-separated demonstration counts, e.g. 10,25,100")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--eval-episodes", type=int, default=None, help="evaluation episodes per cell")
    p.add_argument("--report-only", action="store_true", help="train nothing: the table of the cells finished so far "
                   "(the others left blank)")
    p.add_argument("--overwrite", action="store_true", help="replace the table files (results.*, success.png, "
                   "index.html) where vislearn did not write them; finished cells are kept either way")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="bc settings for every cell, e.g. epochs=50")
    return p


def run(args: argparse.Namespace) -> int:
    grid = load_grid(args.config, args)
    out = Path(args.out)
    names = ["results.json", "results.md", "success.png", "index.html"] + [f"still_{t}.png" for t in grid.tasks]
    claim = claim_folder(out, names, kind=KIND, lock=True, overwrite=args.overwrite)
    claim.check(names, overwrite=args.overwrite)
    summary = run_grid(grid, out, Path(args.demos_root), log=lambda m: print(m, file=sys.stderr, flush=True),
                       report_only=args.report_only)
    write_json(out / "results.json", summary, indent=1)
    plot(summary, out / "success.png")
    page = report(summary, out, stills(grid, out))
    print(markdown(summary))
    print(f"wrote {page}")
    return 0


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
