"""`python -m actions.fewshot --config C --fewshot DIR`: the Something-Else few-shot protocol.

1. Train on the base classes (base_training_set / base_validation_set, labels base_labels.json),
   with the usual held-out model selection.
2. For every k-shot set and every draw: start from the base model, replace the output layer by one
   for the novel classes (finetune_labels.json) and fine-tune the last layer (the paper; `--mode
   head` trains the whole classifier MLP, `all` everything) on finetune_<k>shot_training, then
   evaluate on finetune_<k>shot_validation. There is no held-out set at k shots: the last epoch
   is evaluated.
3. Report top-1/top-5 per k as mean +- 95% confidence interval over the draws (Student t).
Every stage is its own run folder under `out`, so an interrupted few-shot run resumes where it was.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from common.cli import Parser, command
from common.files import output_folder
from common.errors import UserError
from common.jsonio import read_json, write_json
from datasets.split_layout import (BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS, LABELS, TRAIN, VALIDATION, draw_dir,
                                   find_file, find_shot_files)

from .config import TrainConfig, load_config
from .report import format_table
from .train import train


def stage_split(folder: Path, labels: Path, train_set: Path, val_set: Path) -> Path:
    """The split folder of one stage of the protocol (the trainer reads split folders): the stage's labels,
    training and validation files under the compositional layout's names, kept in the stage's run folder
    as the record of what it trained on."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in ((LABELS, labels), (TRAIN, train_set), (VALIDATION, val_set)):
        write_json(folder / name, read_json(src))
    return folder


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval (Student t; 0 for a single draw)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def run_stage(cfg: TrainConfig) -> dict:
    code = train(cfg, resume=True)
    if code != 0:
        raise RuntimeError(f"stage {cfg.out} stopped with exit code {code}")
    return read_json(Path(cfg.out) / "results.json")


def fewshot(args) -> int:
    cfg = load_config(args.config, args.overrides)
    folder, out = Path(args.fewshot), output_folder(cfg.out, "out=")
    files = {name: find_file(folder, name) for name in (BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS)}
    missing = [n for n, p in files.items() if p is None]
    if missing:
        raise UserError(f"{folder}: not a few-shot split folder (missing {', '.join(missing)}); "
                        f"make one with `python -m splits fewshot`")
    base_split = stage_split(out / "base" / "split", files[BASE_LABELS], files[BASE_TRAIN], files[BASE_VAL])
    base = run_stage(dataclasses.replace(cfg, split=str(base_split), out=str(out / "base")))
    base_ckpt = out / "base" / "best.pt"
    print(f"base classes: top-1 {base['evaluation']['top1']:.4f} top-5 {base['evaluation']['top5']:.4f}")

    shot_files = find_shot_files(folder)
    shots = args.shots or sorted(shot_files)
    results: dict[int, list[dict]] = {}
    for k in shots:
        if k not in shot_files or "val" not in shot_files[k]:
            raise UserError(f"{folder}: no {k}-shot fine-tuning/validation files")
        draws = [d for d in range(args.draws) if d == 0 or k in find_shot_files(draw_dir(folder, d))]
        if len(draws) < args.draws:
            print(f"warning: only {len(draws)} draws of the {k}-shot set in {folder}", file=sys.stderr)
        for d in draws:
            train_set = shot_files[k]["train"] if d == 0 else find_shot_files(draw_dir(folder, d))[k]["train"]
            stage = out / "finetune" / f"{k}shot" / f"draw_{d}"
            split = stage_split(stage / "split", files[FINETUNE_LABELS], train_set, shot_files[k]["val"])
            n_train = len(read_json(train_set))
            ft = dataclasses.replace(cfg, split=str(split), out=str(stage), init_checkpoint=str(base_ckpt),
                                     trainable=args.mode, holdout_fraction=0.0, epochs=args.finetune_epochs,
                                     lr=args.finetune_lr, lr_steps=[], batch_size=min(cfg.batch_size, n_train),
                                     max_videos=0)
            res = run_stage(ft)["evaluation"]
            results.setdefault(k, []).append({"draw": d, "top1": res["top1"], "top5": res["top5"]})
    rows, summary = [], {"base": base["evaluation"]["top1"], "mode": args.mode, "shots": {}}
    for k, rs in results.items():
        m1, c1 = mean_ci([r["top1"] for r in rs])
        m5, c5 = mean_ci([r["top5"] for r in rs])
        summary["shots"][str(k)] = {"draws": rs, "top1_mean": m1, "top1_ci95": c1, "top5_mean": m5, "top5_ci95": c5}
        rows.append([f"{k}-shot", len(rs), f"{100 * m1:.1f} ± {100 * c1:.1f}", f"{100 * m5:.1f} ± {100 * c5:.1f}"])
    write_json(out / "fewshot_results.json", summary, indent=1)
    print(format_table(rows, ["novel classes", "draws", "top-1 (95% CI)", "top-5 (95% CI)"]))
    print(f"wrote {out / 'fewshot_results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m actions.fewshot", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="training config (model, data paths, base-training recipe)")
    p.add_argument("--fewshot", required=True, help="few-shot split folder (python -m splits fewshot, or the official files)")
    p.add_argument("--shots", nargs="*", type=int, help="which k-shot sets (default: all in the folder)")
    p.add_argument("--draws", type=int, default=1, help="independent draws of each k-shot set to use (default 1)")
    p.add_argument("--mode", default="last", choices=["last", "head", "all"], help="what fine-tuning trains")
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. out=runs/fewshot")
    return p


main = command(build_parser, fewshot)


if __name__ == "__main__":
    sys.exit(main())
