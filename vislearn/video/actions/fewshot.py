"""`vislearn video fewshot --config C --fewshot DIR`: the Something-Else few-shot protocol.

1. Train on the base classes (base_training_set / base_validation_set, labels base_labels.json),
   with the usual held-out model selection.
2. For every k-shot set and every draw: start from the base model, replace the output layer by one
   for the novel classes (finetune_labels.json) and fine-tune the last layer (the paper) on
   finetune_<k>shot_training, then evaluate on finetune_<k>shot_validation. There is no held-out
   set at k shots: the last epoch is evaluated.
   With `--mode last` (default) the frozen base model computes the input of its output layer once
   per video (the penultimate features; the frozen part runs in eval mode, as in training with
   only the last layer trainable) and the new layer is trained on those features to convergence
   (cross-entropy + the config's weight decay, L-BFGS; `fit_output_layer`), so every draw costs
   a fraction of a second. The training clips are the evaluation view (no augmentation).
   `--mode head` (the whole classifier MLP) and `all` (everything) train through actions.train
   with SGD for `--finetune-epochs` at `--finetune-lr`.
3. Report top-1/top-5 per k as mean +- 95% confidence interval over the draws (Student t).
Every stage is its own folder under `out` (results.json, scores.npz and, for `last`, best.pt: the
base model with the novel output layer, a checkpoint alone enough for inference), so an
interrupted few-shot run resumes where it was.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from vislearn.common.checkpoint import save_checkpoint
from vislearn.common.cli import Parser, command
from vislearn.common.outputs import claim_folder
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.text import printable
from vislearn.video.data.split_layout import (BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS, LABELS, TRAIN, VALIDATION, draw_dir,
                                   find_file, find_shot_files)
from vislearn.video.data.ssv2 import Record, class_names, load_labels, load_records

from .config import TrainConfig, load_config, to_dict
from .data import eval_dataset_with_cache, eval_loader, make_dataset, model_inputs
from .distributed import DistInfo, pick_device
from .evaluate import publish_results, save_scores
from .checkpoints import config_of, load_model_checkpoint, model_from_checkpoint
from .metrics import softmax, summarize
from vislearn.common.tables import format_table
from .train import output_layer, train


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


# --------------------------------------------------------------------------- last layer on frozen features
@torch.no_grad()
def penultimate_features(model: nn.Module, cfg: TrainConfig, records: list[Record], labels: dict[str, int],
                         device: torch.device) -> dict[str, np.ndarray]:
    """video id -> the input of the model's output layer (mean over the evaluation views), eval mode."""
    layer = output_layer(model)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().float().cpu()))
    ds = make_dataset(cfg, records, labels, **model_inputs(model), train=False, views=tuple(cfg.eval_views),
                      source="few-shot features")
    if ds.report["kept"] < ds.report["records"]:
        raise UserError(f"{ds.report['records'] - ds.report['kept']} of {ds.report['records']} few-shot videos cannot be "
                        f"read ({ds.report})")
    dist = DistInfo(device=device)
    ds = eval_dataset_with_cache(cfg, model, ds, labels, dist, "few-shot", log=lambda *a: None)
    model.eval()
    feats: dict[str, list[np.ndarray]] = {}
    try:
        for batch in eval_loader(ds, cfg, dist):
            captured.clear()
            model({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()})
            for vid, f in zip(batch["video_id"], captured[0].numpy()):
                feats.setdefault(vid, []).append(f)
    finally:
        hook.remove()
    return {vid: np.mean(fs, axis=0) for vid, fs in feats.items()}


def fit_output_layer(x: np.ndarray, y: np.ndarray, num_classes: int, *, weight_decay: float, seed: int,
                     max_iter: int = 1000) -> tuple[nn.Linear, dict]:
    """A new output layer trained on fixed features to convergence: cross-entropy plus the recipe's
    weight decay (weight_decay/2 * squared norm of weight and bias, what SGD's weight decay
    minimises), full batch, L-BFGS in float64. The problem is convex, so the result does not hang on
    a learning rate or an epoch count (SGD on these 512-d features still underfits 45 examples after
    1,000 epochs). Also returns the final training loss and top-1 and the L-BFGS iterations."""
    torch.manual_seed(seed)
    layer = nn.Linear(x.shape[1], num_classes).double()
    xt, yt = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.int64))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(layer(xt), yt) + 0.5 * weight_decay * sum((p ** 2).sum() for p in layer.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    iterations = int(opt.state[layer.weight].get("n_iter", 0))
    with torch.no_grad():
        logits = layer(xt)
        fit = {"train_loss": float(loss_fn(logits, yt)), "train_top1": float((logits.argmax(1) == yt).double().mean()),
               "lbfgs_iterations": iterations, "converged": iterations < max_iter}
    return layer.float().eval(), fit


def finetune_last_layers(base_run: Path, cfg: TrainConfig, folder: Path, out: Path, shots: list[int], draws: int,
                         log=print, base_checkpoint: Path | None = None) -> dict[int, list[dict]]:
    """Fit a novel output layer on top of the base model of `base_run` (or `base_checkpoint`, e.g. a
    converted official model) for every k and draw.

    Writes out/finetune/<k>shot/draw_<d>/{results.json, scores.npz, best.pt}; a stage whose
    results.json exists is read back, not redone. Returns {k: [{draw, top1, top5, ...}]}.
    """
    shot_files = find_shot_files(folder)
    finetune_labels = load_labels(find_file(folder, FINETUNE_LABELS))
    names = class_names(finetune_labels)
    plan = []
    for k in shots:
        if k not in shot_files or "val" not in shot_files[k]:
            raise UserError(f"{folder}: no {k}-shot fine-tuning/validation files")
        found = [d for d in range(draws) if d == 0 or k in find_shot_files(draw_dir(folder, d))]
        if len(found) < draws:
            log(printable(f"warning: only {len(found)} draws of the {k}-shot set in {folder}"))
        for d in found:
            files = shot_files[k] if d == 0 else find_shot_files(draw_dir(folder, d))[k]
            plan.append((k, d, out / "finetune" / f"{k}shot" / f"draw_{d}", files["train"], shot_files[k]["val"]))
    todo = [p for p in plan if not (p[2] / "results.json").exists()]
    base_checkpoint = Path(base_checkpoint or base_run / "best.pt")
    if todo:
        device = pick_device(cfg.device)
        ckpt = load_model_checkpoint(base_checkpoint)
        model = model_from_checkpoint(ckpt, device)
        records = {}
        for _, _, _, train_set, val_set in todo:
            for path in (train_set, val_set):
                if path not in records:
                    records[path] = load_records(path, finetune_labels)
        unique = {r.id: r for recs in records.values() for r in recs}
        feats = penultimate_features(model, cfg, list(unique.values()), finetune_labels, device)
        log(f"few-shot: features of {len(feats)} videos from {base_checkpoint}")
        for k, d, stage, train_set, val_set in todo:
            tr, va = records[train_set], records[val_set]
            y_tr = np.array([finetune_labels[r.class_name] for r in tr])
            y_va = np.array([finetune_labels[r.class_name] for r in va])
            layer, fit = fit_output_layer(np.stack([feats[r.id] for r in tr]), y_tr, len(names),
                                          weight_decay=cfg.weight_decay, seed=cfg.seed + 1000 * d + k)
            with torch.no_grad():
                logits = layer(torch.from_numpy(np.stack([feats[r.id] for r in va]).astype(np.float32))).numpy()
            summary = summarize(softmax(logits), y_va, names)
            stage.mkdir(parents=True, exist_ok=True)
            state = dict(ckpt["model"])
            prefix = next(n for n, m in model.named_modules() if m is output_layer(model))
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = layer.weight.detach(), layer.bias.detach()
            save_checkpoint({"model": state, "class_names": names, "model_name": ckpt["model_name"],
                             "model_args": ckpt.get("model_args", {}), "epoch": 0,
                             "config": {**to_dict(cfg), "split": str(folder), "trainable": "last",
                                        "init_checkpoint": str(base_checkpoint)}}, stage / "best.pt")
            save_scores(stage / "scores.npz", [r.id for r in va], softmax(logits), y_va, names)
            write_json(stage / "results.json", {
                "mode": "last", "shots": k, "draw": d, "base": str(base_checkpoint),
                "train_set": str(train_set), "train_videos": len(tr), "weight_decay": cfg.weight_decay, **fit,
                "evaluation": {"set": str(val_set), **summary}}, indent=1)
    results: dict[int, list[dict]] = {}
    for k, d, stage, _, _ in plan:
        ev = read_json(stage / "results.json")["evaluation"]
        results.setdefault(k, []).append({"draw": d, "top1": ev["top1"], "top5": ev["top5"], "run": str(stage)})
    return results


# --------------------------------------------------------------------------- the CLI
MODEL_INPUT_KEYS = ("model", "model_args", "num_box_frames", "num_slots", "official_slots", "num_rgb_frames",
                    "rgb_sampler", "input_size", "crop", "frame_size")


def base_model_config(cfg: TrainConfig, path: Path, base_labels: Path) -> TrainConfig:
    """`cfg` (data paths, running options) with the model and its input settings of the base checkpoint."""
    ckpt = load_model_checkpoint(path)
    if "class_names" not in ckpt or "model_name" not in ckpt:
        raise UserError(f"{path}: not a checkpoint of actions.train or actions.convert (no class names / model name)")
    if list(ckpt["class_names"]) != class_names(load_labels(base_labels)):
        raise UserError(f"{path}: its classes differ from those of {base_labels}")
    own = config_of(ckpt, {}, path)
    return dataclasses.replace(cfg, **{k: getattr(own, k) for k in MODEL_INPUT_KEYS})


def _fewshot_results(path: Path) -> bool:
    """Whether `path` is the fewshot_results.json of this command (a folder of an earlier version, made before
    manifests, whose files are taken as they are)."""
    try:
        data = read_json(path)
    except (OSError, UserError):
        return False
    return isinstance(data, dict) and {"mode", "shots"} <= set(data)


def fewshot(args) -> int:
    cfg = load_config(args.config, args.overrides)
    folder, out = Path(args.fewshot), Path(cfg.out)
    # its own files (a folder of an earlier version, fewshot_results.json and no manifest, taken as it is);
    # each training stage below claims and locks its own folder
    claim_folder(out, ["fewshot_results.json", "report.html"], kind="video fewshot", overwrite=args.overwrite,
                 inputs=[folder, args.base], flag="out=", adopt=_fewshot_results(out / "fewshot_results.json"))
    files = {name: find_file(folder, name) for name in (BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS)}
    needed = (BASE_LABELS, FINETUNE_LABELS) if args.base else tuple(files)  # --base: no base training
    missing = [n for n in needed if files[n] is None]
    if missing:
        raise UserError(f"{folder}: not a few-shot split folder (missing {', '.join(missing)}); "
                        f"make one with `vislearn video splits fewshot`")
    if args.base:  # a base model trained elsewhere (e.g. converted from the official release)
        base_ckpt, base = Path(args.base), None
        cfg = base_model_config(cfg, base_ckpt, files[BASE_LABELS])
        print(printable(f"base model: {base_ckpt} (given with --base, not trained here)"))
    else:
        base_split = stage_split(out / "base" / "split", files[BASE_LABELS], files[BASE_TRAIN], files[BASE_VAL])
        base = run_stage(dataclasses.replace(cfg, split=str(base_split), out=str(out / "base")))
        base_ckpt = out / "base" / "best.pt"
        print(f"base classes: top-1 {base['evaluation']['top1']:.4f} top-5 {base['evaluation']['top5']:.4f}")

    shot_files = find_shot_files(folder)
    shots = args.shots or sorted(shot_files)
    if args.mode == "last":
        results = finetune_last_layers(out / "base", cfg, folder, out, shots, args.draws, base_checkpoint=base_ckpt)
    else:
        results = {}
        for k in shots:
            if k not in shot_files or "val" not in shot_files[k]:
                raise UserError(f"{folder}: no {k}-shot fine-tuning/validation files")
            draws = [d for d in range(args.draws) if d == 0 or k in find_shot_files(draw_dir(folder, d))]
            if len(draws) < args.draws:
                print(printable(f"warning: only {len(draws)} draws of the {k}-shot set in {folder}"), file=sys.stderr)
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
    rows, summary = [], {"base": base["evaluation"]["top1"] if base else None, "base_checkpoint": str(base_ckpt),
                         "mode": args.mode, "shots": {}}
    for k, rs in results.items():
        m1, c1 = mean_ci([r["top1"] for r in rs])
        m5, c5 = mean_ci([r["top5"] for r in rs])
        summary["shots"][str(k)] = {"draws": rs, "top1_mean": m1, "top1_ci95": c1, "top5_mean": m5, "top5_ci95": c5}
        rows.append([f"{k}-shot", len(rs), f"{100 * m1:.1f} ± {100 * c1:.1f}", f"{100 * m5:.1f} ± {100 * c5:.1f}"])
    print(format_table(rows, ["novel classes", "draws", "top-1 (95% CI)", "top-5 (95% CI)"]))
    publish_results(out, summary, "fewshot_results.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video fewshot", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="training config (model, data paths, base-training recipe)")
    p.add_argument("--fewshot", required=True, help="few-shot split folder (vislearn video splits fewshot, or the official files)")
    p.add_argument("--shots", nargs="*", type=int, help="which k-shot sets (default: all in the folder)")
    p.add_argument("--draws", type=int, default=1, help="independent draws of each k-shot set to use (default 1)")
    p.add_argument("--mode", default="last", choices=["last", "head", "all"], help="what fine-tuning trains")
    p.add_argument("--base", metavar="CKPT", help="a trained base model (e.g. `vislearn video convert` output) "
                                                  "instead of training one; its inputs follow its own config")
    p.add_argument("--finetune-epochs", type=int, default=20, help="--mode head/all: SGD epochs (default 20)")
    p.add_argument("--finetune-lr", type=float, default=0.01, help="--mode head/all: learning rate (default 0.01)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the protocol's names in out= that vislearn did not write")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. out=runs/fewshot")
    return p


main = command(build_parser, fewshot)


if __name__ == "__main__":
    sys.exit(main())
