"""`vislearn pretrain metric --data objects-modes|digits-modes --out RUN`: metric learning with a margin-based
loss (pytorch-metric-learning's `TripletMarginLoss` or `MarginLoss`), with the nearest-positive rule
(`--positives nearest`, Levi et al., ICCV 2021) or every positive (`--positives all`).

Batches are class-balanced: P coarse classes x K items (all training classes by default), so every class comes
with several of its modes. Every `--eval-every` steps: the mean loss of the interval, Recall@1 and the modes kept
(`subclusters`) on the val split of the training classes (where settings are chosen), and a checkpoint. At the
end, on the test split: Recall@1/2/4/8 on the held-out classes, and sub-cluster survival on the training and the
held-out classes.

The run folder (`--out`, locked while a run writes it): config.json, last.pt (atomic: head, optimizer, step,
RNG state, metrics), metrics.jsonl, embedder.pt (`retrieve` loads it), results.json, curves.png,
embeddings.png and index.html. A killed run continues with `--resume` and ends with the same weights as an
uninterrupted one (the batches come from a NumPy generator whose state is saved with each checkpoint).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import write_json, write_jsonl
from vislearn.common.outputs import session
from vislearn.common.validate import COMMAND_LINE, setting, validate

from ..runs import add_config_flags, add_run_flags, open_run
from .data import MODE_SETS, ModeSplit, load_split, mode_set, trunk_features
from .miners import POSITIVES, make_miner
from .model import Embedder, build_head, head_for, pixels, save_embedder, trunk_embedder

KIND = "pretrain metric"
RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "embedder.pt", "results.json", "curves.png",
             "embeddings.png", "index.html")
LOSSES = ("triplet", "margin")


@dataclass
class MetricConfig:
    data: str = setting("digits-modes", choices=tuple(MODE_SETS))
    out: str = ""
    loss: str = setting("triplet", choices=LOSSES)
    positives: str = setting("nearest", choices=POSITIVES)
    margin: float = setting(0.2, min=0)
    beta: float = setting(1.2, above=0)
    steps: int = setting(400, min=1)
    per_class: int = setting(32, min=2)
    classes_per_batch: int = setting(0, min=0)
    lr: float = setting(1e-3, above=0)
    dim: int = setting(64, min=2)
    eval_every: int = setting(50, min=1)
    seed: int = setting(0, min=0)
    threads: int = setting(0, min=0)


HELP = {
    "loss": "triplet (TripletMarginLoss) or margin (MarginLoss, Wu et al. 2017)",
    "positives": "nearest: each anchor's nearest same-class sample (the rule); all: every same-class sample",
    "margin": "the loss's margin (both losses)",
    "beta": "MarginLoss's boundary between positive and negative distances",
    "steps": "training steps",
    "per_class": "K: items per class in a batch",
    "classes_per_batch": "P: classes in a batch (0: every training class)",
    "lr": "Adam learning rate",
    "dim": "embedding dimension",
    "eval_every": "steps between val evaluations and checkpoints",
    "seed": "seed of the head and of the batches",
    "threads": "torch CPU threads (0: torch's default)",
}


def make_loss(cfg: MetricConfig):
    from pytorch_metric_learning import losses  # noqa: PLC0415

    if cfg.loss == "triplet":
        return losses.TripletMarginLoss(margin=cfg.margin)
    return losses.MarginLoss(margin=cfg.margin, beta=cfg.beta)


@dataclass
class Prepared:
    """What training reads: the head's inputs for each part, and the parts (labels, modes, images)."""

    parts: dict[str, ModeSplit]
    inputs: dict[str, torch.Tensor]
    arch: str
    args: dict


PARTS = {"train": ("train", "train"), "val": ("val", "train"), "test_train": ("test", "train"),
         "test_heldout": ("test", "heldout")}


def prepare(cfg: MetricConfig, log=print) -> Prepared:
    spec = mode_set(cfg.data)
    parts = {name: load_split(spec, split, side) for name, (split, side) in PARTS.items()}
    if spec.trunk is None:
        inputs = {k: pixels(p.images) for k, p in parts.items()}
    else:
        fn = None
        inputs = {}
        for k, p in parts.items():
            if fn is None:
                fn = trunk_embedder(spec.trunk, spec.size)
            t0 = time.perf_counter()
            inputs[k] = trunk_features(spec, p, fn)
            if time.perf_counter() - t0 > 2:
                log(f"{spec.trunk} features of {len(p)} {p.split} images computed and cached "
                    f"({time.perf_counter() - t0:.0f} s)")
    arch, args = head_for(spec, cfg.dim, inputs["train"].shape[1] if spec.trunk else None)
    return Prepared(parts, inputs, arch, args)


def sample_batch(labels: np.ndarray, by_class: dict[int, np.ndarray], cfg: MetricConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """P classes x K items (with replacement only where a class has fewer than K)."""
    classes = np.array(sorted(by_class))
    p = cfg.classes_per_batch or len(classes)
    chosen = rng.choice(classes, size=min(p, len(classes)), replace=False)
    return np.concatenate([rng.choice(by_class[c], size=cfg.per_class, replace=len(by_class[c]) < cfg.per_class)
                           for c in chosen])


def evaluate_part(emb: np.ndarray, part: ModeSplit, seed: int) -> dict:
    from .evaluate import recall_at_k  # noqa: PLC0415
    from .subclusters import survival  # noqa: PLC0415

    return {**recall_at_k(emb, part.labels.numpy()),
            "subclusters": survival(emb, part.labels.numpy(), part.modes.numpy(), seed)}


def check_config(cfg: MetricConfig) -> None:
    validate(cfg, {f.name: COMMAND_LINE for f in dataclasses.fields(cfg)})
    if not cfg.out:
        raise UserError("--out: a run folder is needed")


def train(cfg: MetricConfig, resume: bool = False, log=print, overwrite: bool = False) -> dict:
    """Train (or with `resume`, continue) the run in `cfg.out`; returns results.json's content."""
    with session():
        return _train(cfg, resume, log, overwrite)


def _train(cfg: MetricConfig, resume: bool, log, overwrite: bool) -> dict:
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    last = out / "last.pt"
    done = open_run(cfg, KIND, RUN_FILES, resume, overwrite, lambda ckpt: ckpt["step"] >= cfg.steps)
    if done is not None:
        return done
    config = dataclasses.asdict(cfg)
    prep = prepare(cfg, log)
    spec = mode_set(cfg.data)
    torch.manual_seed(cfg.seed)
    head = build_head(prep.arch, prep.args)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    loss_fn, miner = make_loss(cfg), make_miner(cfg.positives)
    rng = np.random.default_rng(cfg.seed)
    labels = prep.parts["train"].labels.numpy()
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    x_train, y_train = prep.inputs["train"], prep.parts["train"].labels
    embedder = Embedder(head, prep.arch, prep.args, spec.trunk, spec.size, spec.name, spec.classes)
    step, metrics = 0, []
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        load_state(head, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        rng.bit_generator.state = ckpt["batch_rng"]
        step, metrics = int(ckpt["step"]), list(ckpt["metrics"])
        log(f"resumed {last} at step {step}")
    write_jsonl(out / "metrics.jsonl", metrics)
    log(f"{cfg.data}: {len(y_train)} training items in {len(by_class)} classes "
        f"({sum(len(spec.groups[c]) for c in by_class)} modes); {cfg.loss} loss, {cfg.positives} positives, "
        f"{cfg.steps} steps of {min(cfg.classes_per_batch or len(by_class), len(by_class))} x {cfg.per_class}")
    losses, t0 = [], time.perf_counter()
    while step < cfg.steps:
        head.train()
        idx = torch.from_numpy(sample_batch(labels, by_class, cfg, rng))
        emb = head(x_train[idx])
        y = y_train[idx]
        loss = loss_fn(emb, y, miner(emb, y) if miner is not None else None)
        if not torch.isfinite(loss):
            raise UserError(f"{cfg.out}: the loss is not finite at step {step + 1} (lower --lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val = evaluate_part(embedder.embed_inputs(prep.inputs["val"]).numpy(), prep.parts["val"], cfg.seed)
            row = {"step": step, "loss": float(np.mean(losses)), "val_recall@1": val["recall@1"],
                   "val_modes_kept": val["subclusters"]["fraction"], "val_nmi": val["subclusters"]["nmi"],
                   "seconds": time.perf_counter() - t0}
            metrics.append(row)
            save_checkpoint({"model": head.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "rng": rng_state(), "batch_rng": rng.bit_generator.state, "metrics": metrics,
                             "config": config}, last)
            write_jsonl(out / "metrics.jsonl", metrics)
            log(f"step {step}/{cfg.steps} | loss {row['loss']:.4f} | val Recall@1 {row['val_recall@1']:.3f} | "
                f"val modes kept {row['val_modes_kept']:.2f} | {row['seconds']:.1f}s")
            losses, t0 = [], time.perf_counter()
    results = finish(cfg, prep, embedder, metrics, out)
    ho = results["heldout"]
    log(f"held-out Recall@1/2/4/8 {' / '.join(format(ho[f'recall@{k}'], '.3f') for k in (1, 2, 4, 8))}; "
        f"modes kept: training classes {results['train']['subclusters']['kept']}/"
        f"{results['train']['subclusters']['modes']}, held-out {results['heldout']['subclusters']['kept']}/"
        f"{results['heldout']['subclusters']['modes']}; embedder: {out / 'embedder.pt'}")
    return results


def finish(cfg: MetricConfig, prep: Prepared, embedder: Embedder, metrics: list[dict], out: Path) -> dict:
    save_embedder(out / "embedder.pt", embedder, {"method": "metric", "loss": cfg.loss, "positives": cfg.positives,
                                                  "steps": cfg.steps, "seed": cfg.seed})
    embs = {k: embedder.embed_inputs(prep.inputs[k]).numpy() for k in ("test_train", "test_heldout")}
    results = {"data": cfg.data, "loss": cfg.loss, "positives": cfg.positives, "seed": cfg.seed, "steps": cfg.steps,
               "val_recall@1": metrics[-1]["val_recall@1"], "val_modes_kept": metrics[-1]["val_modes_kept"],
               "heldout": evaluate_part(embs["test_heldout"], prep.parts["test_heldout"], cfg.seed),
               "train": evaluate_part(embs["test_train"], prep.parts["test_train"], cfg.seed),
               "train_seconds": sum(m["seconds"] for m in metrics), "embedder": str(out / "embedder.pt")}
    from .report import write_report  # noqa: PLC0415 (matplotlib only when a run ends)

    write_report(cfg, metrics, results, embs, prep.parts, out)
    write_json(out / "results.json", results, indent=1)
    return results


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn pretrain metric", description="Metric learning on an image set whose classes have "
               "sub-clusters, with the nearest-positive rule against class collapse (Levi et al., ICCV 2021). "
               "Writes RUN/embedder.pt (for `vislearn pretrain retrieve`), results.json and index.html.")
    p.add_argument("--data", required=True, help=f"sub-cluster set: {' | '.join(MODE_SETS)}")
    p.add_argument("--out", required=True, help="run folder")
    add_config_flags(p, MetricConfig(), HELP, skip=("data", "out"))
    add_run_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = MetricConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MetricConfig)})
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    sys.stdout.flush()
    return 0


main = command(build_parser, run)
