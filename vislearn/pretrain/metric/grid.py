"""The table of docs/pretrain.md: triplet and margin losses, with and without the nearest-positive rule, 3 seeds,
on both sub-cluster sets, plus the untrained reference (the frozen trunk's features for objects-modes, the raw
pixels for digits-modes). One process, runs one after another; finished runs are reused (`--resume`).

    python -m vislearn.pretrain.metric.grid --out runs/metric-grid [--seeds 0 1 2] [--data objects-modes ...]

Prints a Markdown table (mean and spread over seeds) and writes OUT/table.md and OUT/summary.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command
from vislearn.common.files import write_text
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_folder

from .data import MODE_SETS
from .train import LOSSES, MetricConfig, evaluate_part, prepare, train

KS = (1, 2, 4, 8)


def untrained(data: str) -> dict:
    """Recall@k and survival of what the head reads, before any training (L2-normalised)."""
    prep = prepare(MetricConfig(data=data))
    out = {}
    for key, side in (("test_heldout", "heldout"), ("test_train", "train")):
        x = torch.nn.functional.normalize(prep.inputs[key].flatten(1), dim=1).numpy()
        out[side] = evaluate_part(x, prep.parts[key], 0)
    return out


def mean_sd(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    v = np.asarray(values, float) * scale
    return f"{v.mean():.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def kept(results: list[dict], side: str) -> str:
    k = [r[side]["subclusters"]["kept"] for r in results]
    m = results[0][side]["subclusters"]["modes"]
    return f"{np.mean(k):.1f}/{m}"


def row(name: str, results: list[dict]) -> list[str]:
    return [name, *(mean_sd([r["heldout"][f"recall@{k}"] for r in results]) for k in KS),
            kept(results, "train"), kept(results, "heldout"),
            mean_sd([r["heldout"]["subclusters"]["nmi"] for r in results], 1.0, 2),
            mean_sd([r["val_recall@1"] for r in results]) if "val_recall@1" in results[0] else "-"]


HEADER = ["setting", "R@1", "R@2", "R@4", "R@8", "modes kept (train cl.)", "modes kept (held-out)", "NMI held-out",
          "val R@1"]


def grid(out: Path, datas: list[str], seeds: list[int], steps: int, log=print) -> str:
    claim_folder(out, kind="pretrain metric grid", lock=True, flag="--out")
    summary, lines = {}, []
    for data in datas:
        base = untrained(data)
        rows = [row("untrained input" if MODE_SETS[data].trunk is None else "frozen trunk, no head", [base])]
        for loss in LOSSES:
            for positives in ("all", "nearest"):
                results = []
                for seed in seeds:
                    t0 = time.perf_counter()
                    cfg = MetricConfig(data=data, out=str(out / f"{data}-{loss}-{positives}-s{seed}"), loss=loss,
                                       positives=positives, seed=seed, steps=steps, threads=1)
                    results.append(train(cfg, resume=True, log=lambda *a: None))
                    log(f"{data} {loss} {positives} seed {seed}: held-out R@1 {results[-1]['heldout']['recall@1']:.3f}"
                        f", modes kept train {results[-1]['train']['subclusters']['kept']}, "
                        f"{time.perf_counter() - t0:.0f} s")
                summary[f"{data}/{loss}/{positives}"] = results
                rows.append(row(f"{loss}, {positives} positives", results))
        from vislearn.common.tables import format_table  # noqa: PLC0415

        lines += [f"**{data}** (Recall@k in %, on the held-out classes' test split; mean ± sd over seeds "
                  f"{', '.join(map(str, seeds))})", "", format_table(rows, HEADER), ""]
    table = "\n".join(lines)
    write_text(out / "table.md", table)
    write_json(out / "summary.json", summary, indent=1)
    return table


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vislearn.pretrain.metric.grid", description="The metric-learning table over seeds.")
    p.add_argument("--out", required=True, help="folder of the runs")
    p.add_argument("--data", nargs="+", default=list(MODE_SETS), choices=list(MODE_SETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=MetricConfig().steps)
    return p


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    print(grid(Path(args.out), args.data, args.seeds, args.steps))
    sys.stdout.flush()
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
