"""`vislearn video train --config CONFIG.yaml [key=value ...]`: train a model on a split.

The run folder (`out`) gets: config.yaml (resolved), last.pt / best.pt (atomic, every epoch),
metrics.jsonl (one line per epoch), results.json (held-out selection + final evaluation),
scores.npz (per-video scores of the evaluation set), curves.png, per_class.png, confusion.png and
report.html (`vislearn video report`: the whole run on one page).
Under `torchrun --nproc_per_node=K` the same command trains with DistributedDataParallel.
One training at a time writes into a run folder (its lock: a second is refused in one line, naming the
first's pid); files there of the run's names that vislearn did not write are replaced only with --overwrite
(`vislearn.common.outputs`).
Exit codes: 0 done, 2 bad input/config, 3 stopped on a non-finite loss (last good checkpoint kept).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state, state_mismatch
from vislearn.common.cli import Parser, run_main
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.outputs import claim_folder, session
from vislearn.common.freeze import freeze
from vislearn.common.jsonio import write_json, write_jsonl
from vislearn.video.data.split_layout import split_files
from vislearn.video.data.ssv2 import class_names as ordered_class_names
from vislearn.video.data.ssv2 import load_labels

from . import figures, report
from .checkpoints import weight_files, without_weight_sources
from .config import TrainConfig, load_config, save_config, to_dict, with_data_frame_size
from .data import Data, build_data, eval_loader, model_inputs, train_loader, use_feature_cache
from .distributed import cleanup_distributed, init_distributed, synchronize_batchnorm
from .engine import NonFiniteLoss, mean_loss, predict, train_one_epoch
from .evaluate import save_scores
from .metrics import summarize, topk_accuracy
from .models import STIN, create_model
from .models.fusion import FusionModel

EXIT_NAN = 3
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "results.json", "scores.npz", "holdout_scores.npz",
             "curves.png", "per_class.png", "confusion.png", "report.html")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def output_layer(model: nn.Module) -> nn.Linear:
    """The final Linear layer (the one producing the logits)."""
    linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no Linear classifier to fine-tune")
    return linears[-1]


def set_trainable(model: nn.Module, which: str) -> None:
    """all: everything; head: the classifier MLP; last: only the output layer (few-shot, as in the paper).

    The rest is frozen (`vislearn.common.freeze`): no gradients, and eval mode (BatchNorm statistics do not move)."""
    if which != "all":
        freeze(model, keep=model.classifier if which == "head" else output_layer(model))


def build_model(cfg: TrainConfig, class_names: list[str], log=print) -> nn.Module:
    try:
        model = create_model(cfg.model, len(class_names), **cfg.model_args)
    except UserError:  # a weights file named in model_args: its own one line
        raise
    except ValueError as e:
        raise UserError(f"model: {e}") from None
    check_model_fits_clip(model, cfg)
    if cfg.init_checkpoint:
        ckpt = load_checkpoint(cfg.init_checkpoint)
        state = ckpt["model"]
        fresh: list[str] = []
        if list(ckpt.get("class_names", [])) != list(class_names):
            # other classes (few-shot novel classes): the output layer starts from its initialisation
            out_layer = output_layer(model)
            fresh = [name for name, p in model.named_parameters() if any(p is q for q in out_layer.parameters())]
        state = {k: v for k, v in state.items() if k not in fresh}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError:  # shapes differ: say which, in one line
            raise UserError(f"{cfg.init_checkpoint}: does not fit model {cfg.model} "
                            f"({state_mismatch(model, state)})") from None
        missing = [k for k in missing if k not in fresh]
        if unexpected or missing:
            raise UserError(f"{cfg.init_checkpoint}: does not fit model {cfg.model} "
                            f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        log(f"initialised from {cfg.init_checkpoint}" + (f" (new output layer: {', '.join(fresh)})" if fresh else ""))
    set_trainable(model, cfg.trainable)
    return model


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The trainable parameters; a fusion model's streams in a group of their own at lr x stream_lr_scale (joint
    fine-tuning: trained streams adjust slowly while the fresh fusion head learns at the full rate)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.stream_lr_scale == 1.0 or not isinstance(model, FusionModel):
        return [{"params": trainable}]
    in_streams = {id(p) for m in (model.scene, model.stin) for p in m.parameters()}
    head = [p for p in trainable if id(p) not in in_streams]
    streams = [p for p in trainable if id(p) in in_streams]
    return [{"params": head}] + ([{"params": streams, "lr": cfg.lr * cfg.stream_lr_scale}] if streams else [])


def chosen_on(data: Data) -> str:
    """How the evaluated checkpoint was chosen, in the words of the log."""
    if data.holdout is not None and len(data.holdout):
        return "chosen on the held-out part of train"
    return "the last epoch's: no videos were held out of train to choose on"


def check_model_fits_clip(model: nn.Module, cfg: TrainConfig) -> None:
    """A STIN (alone or inside fusion) is built for a fixed number of box frames and slots, and the
    dataset makes clips of num_box_frames x num_slots: a mismatch is refused here, in one line, before
    any data is read (also by --dry-run), rather than as a shape traceback at the first training step."""
    for m in model.modules():
        if isinstance(m, STIN) and (m.num_frames, m.num_slots) != (cfg.num_box_frames, cfg.num_slots):
            raise UserError(f"model_args: {cfg.model}'s STIN takes {m.num_frames} box frames x {m.num_slots} slots, "
                            f"but the data gives num_box_frames={cfg.num_box_frames} x num_slots={cfg.num_slots}; "
                            f"make them agree (model_args num_frames / num_slots, in stin_kwargs for fusion)")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_state(model, optimizer, scheduler, epoch, cfg, data: Data, best, metrics) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
            "epoch": epoch, "config": to_dict(cfg), "class_names": data.class_names, "model_name": cfg.model,
            "model_args": dict(cfg.model_args), "rng": rng_state(), "best": best, "metrics": metrics}


def model_args_diff(saved: dict, new: dict) -> list[str]:
    """'key: saved -> new' for the builder arguments that differ (where initial weights come from aside:
    a resumed run takes its weights from its own checkpoint)."""
    unset = "(unset)"
    saved, new = without_weight_sources(saved), without_weight_sources(new)
    keys = sorted(set(saved) | set(new))
    return [f"{k}: {saved.get(k, unset)!r} -> {new.get(k, unset)!r}" for k in keys
            if saved.get(k, unset) != new.get(k, unset)]




DATA_FIELDS = ("split", "boxes", "videos", "train_boxes_also")  # what a run is trained on: a run is never continued
# or reused on other data


def data_diff(saved: dict, cfg: TrainConfig) -> list[str]:
    """'key: saved -> new' for the data fields of a run's saved config that name other files than `cfg`'s
    (compared as resolved paths, so `data/x` and `./data/x` are the same)."""
    out = []
    for name in DATA_FIELDS:
        was, now = saved.get(name), getattr(cfg, name)
        if name == "train_boxes_also" and bool(was) != bool(now):  # one side trained on a single box source
            out.append(f"{name}: {was or 'none'} -> {now or 'none'}")
        elif was and now and Path(str(was)).resolve() != Path(str(now)).resolve():
            out.append(f"{name}: {was} -> {now}")
    return out


def predict_split(model, ds, cfg, dist, device, desc) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Scores of every video of `ds` (the held-out part, or the evaluated set)."""
    return predict(model, eval_loader(ds, cfg, dist), device, dist=dist, amp=cfg.amp, amp_cpu=cfg.amp_cpu, desc=desc,
                   progress=sys.stderr.isatty())


def evaluate_split(model, ds, cfg, dist, device, class_names, desc) -> tuple[dict, list[str], np.ndarray, np.ndarray]:
    ids, scores, labels = predict_split(model, ds, cfg, dist, device, desc)
    return summarize(scores, labels, class_names), ids, scores, labels


def cpu_threads(cfg: TrainConfig, world_size: int) -> int:
    """Threads for torch on the CPU: the cores of this process's share left after its loader workers."""
    if cfg.threads > 0:
        return cfg.threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(world_size, 1) - cfg.workers)


def train(cfg: TrainConfig, resume: bool = False, dry_run: bool = False, overwrite: bool = False) -> int:
    """Train (or with `resume`, continue) the run in `cfg.out`, holding the folder's lock while it runs
    (`vislearn.common.outputs`: a second writer is refused, and files there that vislearn did not
    write are replaced only with `overwrite`)."""
    with session():  # the run folder's claim and lock end with the run (also in a table's worker process)
        return _train(cfg, resume, dry_run, overwrite)


def _train(cfg: TrainConfig, resume: bool, dry_run: bool, overwrite: bool) -> int:
    cfg.validate()  # every field, as load_config checked them (a config built in code too); the same for --dry-run
    cfg = with_data_frame_size(cfg)  # before anything runs: a frame_size the data contradicts is refused
    dist = init_distributed(cfg.device)  # a device that cannot be used here: one line (vislearn.common.device)
    if dist.device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg, dist.world_size))
    log = print if dist.is_main else (lambda *a, **k: None)
    out = Path(cfg.out)
    last, best_path = out / "last.pt", out / "best.pt"
    if not dry_run:
        # the checks below run under the lock, so two runs started together cannot both pass them
        claim = claim_folder(out, kind="video train", flag="out=", lock=dist.is_main)
        if last.exists() and not resume:
            raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another out=")
        # e.g. init_checkpoint=RUN/best.pt out=RUN would replace the weights it starts from
        inputs = [cfg.init_checkpoint, cfg.boxes, *weight_files(cfg.model_args)]
        # --resume continues the run in `out`: its files are the run's whatever their records say (a run
        # from before manifests, a record lost to a full disk)
        claim.check(RUN_FILES, overwrite or (resume and last.exists()), inputs)
    seed_everything(cfg.seed)
    model = build_model(cfg, ordered_class_names(load_labels(split_files(cfg.split).labels)), log)
    inputs = model_inputs(model)
    data = build_data(cfg, **inputs, log=log)
    n_params = count_parameters(model)
    reads = [what for what, key in (("boxes", "needs_boxes"), ("frames", "needs_frames"),
                                    ("boxes on the frames", "needs_rgb_boxes")) if inputs[key]]
    log(f"data: {len(data.train)} training, {len(data.holdout) if data.holdout else 0} held-out, "
        f"{len(data.evaluation) if data.evaluation else 0} evaluation videos; {len(data.class_names)} classes; "
        f"reads {' + '.join(reads)}")
    if dry_run:
        log(f"model: {cfg.model} {cfg.model_args or ''}")
        log(f"parameters: {n_params}")
        cleanup_distributed()
        return 0

    device = dist.device
    model.to(device)
    data = use_feature_cache(cfg, model, data, dist, log)
    if dist.distributed:
        model = synchronize_batchnorm(model, device)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        ddp = model
    optimizer = torch.optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.lr_steps, gamma=cfg.lr_gamma)
    start_epoch, best = 0, {"epoch": -1, "holdout_top1": -1.0}
    metrics: list[dict] = []
    if resume and last.exists():
        ckpt = load_checkpoint(last, map_location=device)
        if ckpt.get("model_name") != cfg.model:
            raise UserError(f"{last}: was trained as {ckpt.get('model_name')!r}, config says {cfg.model!r}")
        diff = model_args_diff(dict(ckpt.get("model_args", {})), dict(cfg.model_args))
        if diff:
            raise UserError(f"{last}: the run was trained with other model_args ({'; '.join(diff)}); resume with "
                            f"the run's values or choose another out=")
        diff = data_diff(dict(ckpt.get("config", {})), cfg)
        if diff:
            raise UserError(f"{last}: the run was trained on other data ({'; '.join(diff)}); resume with the run's "
                            f"files or choose another out=")
        load_state(model, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        set_rng_state(ckpt["rng"])
        start_epoch, best, metrics = ckpt["epoch"] + 1, ckpt["best"], ckpt.get("metrics", [])
        log(f"resumed {last} after epoch {ckpt['epoch']}")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        # metrics.jsonl holds exactly the epochs of the checkpoint we continue from
        write_jsonl(out / "metrics.jsonl", metrics)

    loader = train_loader(data.train, cfg, dist)
    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        loader.batch_sampler.set_epoch(epoch)
        data.train.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        try:
            row = train_one_epoch(ddp, loader, optimizer, device, epoch, dist=dist, clip_grad_norm=cfg.clip_grad_norm,
                                  amp=cfg.amp, amp_cpu=cfg.amp_cpu, label_smoothing=cfg.label_smoothing,
                                  log_every=cfg.log_every, progress=sys.stderr.isatty())
        except NonFiniteLoss as e:
            log(f"error: {e}; stopped. The last good checkpoint is {last if last.exists() else '(none yet)'}",
                file=sys.stderr)
            cleanup_distributed()
            return EXIT_NAN
        scheduler.step()
        row = {"kind": "epoch", "epoch": epoch, "lr": lr, **row}
        if data.holdout is not None:
            ids, scores, labels = predict_split(ddp, data.holdout, cfg, dist, device, "held-out")
            row.update(holdout_top1=topk_accuracy(scores, labels, 1), holdout_top5=topk_accuracy(scores, labels, 5),
                       holdout_loss=mean_loss(scores, labels))
        metrics.append(row)
        score = row.get("holdout_top1", epoch)  # without a held-out set: the last epoch is the best
        improved = score >= best["holdout_top1"]
        if improved:
            best = {"epoch": epoch, "holdout_top1": score}
        if dist.is_main:
            state = checkpoint_state(model, optimizer, scheduler, epoch, cfg, data, best, metrics)
            save_checkpoint(state, last)
            if improved:
                with atomic_path(best_path) as tmp:
                    shutil.copyfile(last, tmp)
            write_jsonl(out / "metrics.jsonl", metrics)
        held = (f" | held-out top-1 {row['holdout_top1']:.3f} top-5 {row['holdout_top5']:.3f}"
                if "holdout_top1" in row else "")
        log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.4g} | train loss {row['train_loss']:.4f} "
            f"top-1 {row['train_top1']:.3f}{held} | {row['train_seconds']:.1f}s, {row['train_samples_per_s']:.0f} samples/s "
            f"({row['train_data_seconds']:.1f}s waiting for data){' *' if improved else ''}")
    if dist.distributed:
        torch.distributed.barrier()

    results = {"model": cfg.model, "parameters": n_params, "epochs": cfg.epochs, "best": best,
               "train_seconds": time.perf_counter() - t_start, "data": data.report}
    if data.evaluation is not None:
        ckpt = load_checkpoint(best_path if best_path.exists() else last, map_location=device)
        model.load_state_dict(ckpt["model"])
        summary, ids, scores, labels = evaluate_split(ddp, data.evaluation, cfg, dist, device, data.class_names,
                                                      desc=cfg.eval_set)
        results["evaluation"] = {"set": cfg.eval_set, "checkpoint": f"epoch {ckpt['epoch']}",
                                 "views": list(cfg.eval_views), **summary}
        if dist.is_main:
            save_scores(out / "scores.npz", ids, scores, labels, data.class_names)
            figures.plot_per_class(summary["per_class"], out / "per_class.png", f"{cfg.model}: {cfg.eval_set}")
            figures.plot_confusion(summary["confusion"], data.class_names, out / "confusion.png")
        log(f"{cfg.eval_set}: top-1 {summary['top1']:.4f} top-5 {summary['top5']:.4f} over {summary['videos']} videos "
            f"(checkpoint of epoch {ckpt['epoch'] + 1}, {chosen_on(data)})")
        if data.holdout is not None and len(data.holdout):
            # the chosen checkpoint's scores on the held-out part of train: out-of-fold scores on which score
            # ensembles fit their weights (video.actions.combine), never on the evaluated set
            ids, scores, labels = predict_split(ddp, data.holdout, cfg, dist, device, "held-out")
            if dist.is_main:
                save_scores(out / "holdout_scores.npz", ids, scores, labels, data.class_names)
    if dist.is_main:
        write_json(out / "results.json", results, indent=1)
        figures.plot_curves(figures.read_metrics(out / "metrics.jsonl"), out / "curves.png")
        report.report_at_end(out, log)
    cleanup_distributed()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video train", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="Config keys (set in the YAML file or as key=value): "
                      + ", ".join(f.name for f in TrainConfig.__dataclass_fields__.values()))
    p.add_argument("--config", help="YAML file with config keys (configs/video/synthetic/*.yaml, configs/video/ssv2/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. lr=0.02 epochs=5")
    p.add_argument("--resume", action="store_true", help="continue the run in `out` from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the run's names in `out` that vislearn did not write (a user's results.json)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the data pipeline and the model, print 'parameters: N' last, exit without training")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: train(load_config(args.config, args.overrides), resume=args.resume, dry_run=args.dry_run,
                                      overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(main())
