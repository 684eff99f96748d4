"""`vislearn segment train --data DIR --out RUN`: train SAM as the paper does (App. A), at CPU scale.

Each step takes `batch_images` images with up to `masks_per_image` masks each (`samples.SegSamples`), computes
the image embeddings once, and runs the simulated interactive prompting (`interactive.simulate`: a point or a
noisy box, then 8 corrective clicks and 2 refinement rounds, 11 decoder rounds with the previous logits as the
mask prompt) with the focal : dice = 20 : 1 + IoU-MSE loss (`losses.sam_loss`), every round's loss counted.
AdamW with weight decay on weight matrices, linear warm-up then cosine (`vislearn.backbones.optim`).

Start from: `--arch NAME` (fresh weights, `vislearn.segment.model.build.ARCHS`), `--encoder RUN/encoder.pth` (the
image encoder from `vislearn pretrain mae`, the paper's MAE initialisation: `model.from_encoder`), or `--init
SAM.pth` (any SAM checkpoint `load_sam` reads: fine-tuning, the data engine's retraining between rounds).

The run folder gets config.json (the resolved settings), last.pt (atomic, every `ckpt_every` steps: model,
optimizer, schedule, metrics), metrics.jsonl (per step: loss and its parts, IoU of the first and last round, lr;
per evaluation: the val numbers), sam.pth (`save_sam`, loadable by `load_sam`) and results.json (val mIoU: one
point at the mask's interior point with the single-mask output, with the most confident and with the best
(oracle) of the 3 masks, and the mask's box). The batches, masks and clicks of step t depend on (seed, t) only,
so a killed run continued with `--resume` ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vislearn.backbones.optim import param_groups, warmup_cosine
from vislearn.common.checkpoint import load_checkpoint, load_state, save_checkpoint
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session
from vislearn.common.validate import load_settings, setting, validate

from .interactive import simulate
from .masks import interior_point, masks_to_boxes_xyxy
from .model.build import ARCHS, arch_by_name, build_sam, load_sam, save_sam
from .samples import SegSamples

KIND = "segment train"
RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "sam.pth", "results.json")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "segment" / "train.yaml"


@dataclass
class SegTrainConfig:
    """The recipe. These field defaults are the paper's per-step interaction (11 rounds, focal:dice 20:1); the command's
    default is configs/segment/train.yaml on top of them (the CPU recipe: 2 rounds, 1:1, 800 steps, ~8 min on a core)."""

    arch: str = setting("vit_tiny_c256", choices=tuple(ARCHS))
    encoder: str = ""  # an encoder checkpoint (RUN/encoder.pth): the image encoder starts from it
    init: str = ""  # a SAM checkpoint to start from
    img_size: int = setting(256, min=32)  # with `encoder` (else the arch's)
    window_size: int = setting(8, min=1)  # with `encoder`
    freeze_encoder: bool = False
    steps: int = setting(400, min=1)
    batch_images: int = setting(2, min=1)
    masks_per_image: int = setting(16, min=1)
    rounds: int = setting(11, min=1)
    lr: float = setting(4e-4, above=0)
    weight_decay: float = setting(0.1, min=0)
    warmup_steps: int = setting(25, min=0)
    grad_clip: float = setting(1.0, min=0)  # 0: none
    focal_weight: float = setting(20.0, min=0)  # the paper's focal : dice = 20 : 1 (docs/segment.md: at CPU scale
    dice_weight: float = setting(1.0, min=0)  # from a random or small encoder it predicts background only)
    iou_weight: float = setting(1.0, min=0)
    all_masks_steps: int = setting(0, min=0)  # the first steps back-propagate all 3 masks (paper: 0, the lowest only)
    box_noise_max: float = setting(0.0, min=0)  # px at the model input; 0: the paper's 20 px at 1024, scaled
    min_area: int = setting(16, min=1)
    hflip: bool = False
    eval_every: int = setting(0, min=0)  # 0: at the end only
    val_images: int = setting(50, min=0)
    val_masks: int = setting(32, min=1)  # per val image at most (in file order)
    ckpt_every: int = setting(25, min=1)
    seed: int = 0
    threads: int = setting(0, min=0)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> SegTrainConfig:
    """The defaults, then the YAML `path` (and the configs it extends with `base:`), then `key=value` overrides."""
    return load_settings(SegTrainConfig(), path, overrides)


# ------------------------------------------------------------------------------------------------------ model
def build_model(cfg: SegTrainConfig):
    """(SAM, SamArch, where it came from) as `cfg` says: from `init`, from `encoder`, or fresh `arch`."""
    torch.manual_seed(cfg.seed)
    if cfg.init and cfg.encoder:
        raise UserError("--init and --encoder: give one (a SAM checkpoint, or an encoder to start the image encoder)")
    if cfg.init:
        model, arch = load_sam(cfg.init)
        return model.train(), arch, {"init": cfg.init}
    if cfg.encoder:
        from .model.from_encoder import sam_from_encoder  # noqa: PLC0415

        model, arch = sam_from_encoder(cfg.encoder, cfg.img_size, cfg.window_size, seed=cfg.seed)
        return model.train(), arch, {"encoder": cfg.encoder}
    arch = arch_by_name(cfg.arch)
    return build_sam(arch).train(), arch, {"arch": cfg.arch}


def records_of(data, split: str) -> list:
    """A list of SegImage records as given, or the records of an SA-1B folder (of a folder of splits: `split`)."""
    if data is None or isinstance(data, (list, tuple)):
        return list(data or [])
    from .data.sa1b import load_dataset, split_folders  # noqa: PLC0415

    path = Path(data)
    if path.is_dir() and split_folders(path) and not any(path.glob("sa_*.json")):
        return load_dataset(path, split=split)
    return load_dataset(path)


def val_records_of(data, val) -> list:
    """`val` as given; else, when `data` is a folder of splits with a val/ folder, that."""
    if val is not None:
        return records_of(val, "val")
    if isinstance(data, (str, os.PathLike)) and (Path(data) / "val").is_dir() and not any(Path(data).glob("sa_*.json")):
        return records_of(data, "val")
    return []


# ------------------------------------------------------------------------------------------------------- steps
def step_batch(ds: SegSamples, step: int, cfg: SegTrainConfig) -> list[dict]:
    """The samples of step `step` (a function of seed and step only)."""
    rng = np.random.default_rng([cfg.seed, step, 1])
    idx = rng.choice(len(ds), size=cfg.batch_images, replace=len(ds) < cfg.batch_images)
    return [s for s in (ds.get(int(i), step) for i in idx) if len(s["masks"])]


def train_mode(model, freeze_encoder: bool):
    """Training mode, with a frozen encoder kept in eval mode (its BatchNorm statistics stay as loaded)."""
    model.train()
    if freeze_encoder:
        model.image_encoder.eval()
    return model


def embed(model, samples: list[dict], grad: bool = True) -> torch.Tensor:
    images = torch.stack([model.preprocess(s["image"]) for s in samples])
    with torch.set_grad_enabled(grad):
        return model.image_encoder(images)


def train_step(model, samples: list[dict], cfg: SegTrainConfig, step: int, box_noise_max: float):
    """The loss of one step (not yet back-propagated) and its parts."""
    emb = embed(model, samples, grad=not cfg.freeze_encoder)
    image_index = torch.cat([torch.full((len(s["masks"]),), i) for i, s in enumerate(samples)])
    masks = torch.cat([s["masks"] for s in samples])
    low = torch.cat([s["low"] for s in samples])
    sizes = torch.cat([torch.tensor([s["input_size"]]).expand(len(s["masks"]), 2) for s in samples])
    g = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, step, 2]).integers(2 ** 62)))
    return simulate(model, emb, image_index, masks, low, sizes, g, rounds=cfg.rounds, box_noise_max=box_noise_max,
                    loss_weights=(cfg.focal_weight, cfg.dice_weight, cfg.iou_weight),
                    all_masks=step < cfg.all_masks_steps)


@torch.no_grad()
def evaluate(model, ds: SegSamples, max_images: int, max_masks: int = 32, progress: bool = False) -> dict:
    """Val mIoU over masks at the model's input resolution: one point (the mask's interior point) with the
    single-mask output, with the most confident of the 3 masks and with the best of them (oracle); the box."""
    model.eval()
    ious = {"point": [], "point_confident": [], "point_oracle": [], "box": []}
    for i in tqdm(range(min(len(ds), max_images)), desc="evaluating", leave=False, disable=not progress):
        s = ds.get(i, 0, all_masks=True)
        gt = s["masks"][:max_masks]
        if not len(gt):
            continue
        h, w = s["input_size"]
        emb = embed(model, [s], grad=False)
        pts = torch.tensor([interior_point(m[:h, :w].numpy()) for m in gt], dtype=torch.float32)[:, None]
        labels = torch.ones(len(gt), 1, dtype=torch.long)
        size = gt.shape[-1]

        def ious_of(logits):  # [N, M, s, s] -> [N, M]
            up = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)[..., :h, :w] > 0
            t = gt[:, None, :h, :w]
            inter = (up & t).flatten(2).sum(-1).float()
            union = (up | t).flatten(2).sum(-1).float().clamp(min=1)
            return inter / union

        single, _ = model.decode(emb, (pts, labels), None, None, multimask_output=False)
        multi, iou_pred = model.decode(emb, (pts, labels), None, None, multimask_output=True)
        boxed, _ = model.decode(emb, None, masks_to_boxes_xyxy(gt), None, multimask_output=False)
        m = ious_of(multi)
        ious["point"] += ious_of(single)[:, 0].tolist()
        ious["point_confident"] += m[torch.arange(len(gt)), iou_pred.argmax(1)].tolist()
        ious["point_oracle"] += m.amax(1).tolist()
        ious["box"] += ious_of(boxed)[:, 0].tolist()
    out = {f"{k}_miou": float(np.mean(v)) if v else float("nan") for k, v in ious.items()}
    out["val_masks"] = len(ious["point"])
    return out


# ---------------------------------------------------------------------------------------------------- the run
def train(cfg: SegTrainConfig, data, out: str | os.PathLike, val=None, resume: bool = False,
          overwrite: bool = False, log=print, progress: bool | None = None) -> dict:
    """Train (or with `resume`, continue) the run in `out`; returns results.json's content.

    `data`: an SA-1B folder, a folder of splits (its train/; val/ is the default `val`), or a list of SegImage
    records (the data engine's current set); `val`: the same kinds, or None. Start from cfg.init / cfg.encoder /
    cfg.arch (`build_model`)."""
    with session():
        return _train(cfg, data, Path(out), val, resume, overwrite, log,
                      sys.stderr.isatty() if progress is None else progress)


def _train(cfg: SegTrainConfig, data, out: Path, val, resume: bool, overwrite: bool, log, progress: bool) -> dict:
    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    inputs = [p for p in (data if isinstance(data, (str, os.PathLike)) else None, cfg.encoder, cfg.init) if p]
    claim = claim_folder(out, kind=KIND, lock=True, flag="--out", overwrite=overwrite)
    last = out / "last.pt"
    if last.exists() and not resume:
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    claim.check(RUN_FILES, overwrite or (resume and last.exists()), inputs)
    train_records = records_of(data, "train")
    val_records = val_records_of(data, val)
    if not train_records:
        raise UserError(f"{data if isinstance(data, (str, os.PathLike)) else '--data'}: no training images")
    config = {**dataclasses.asdict(cfg), "data": str(data) if isinstance(data, (str, os.PathLike))
              else f"<{len(train_records)} records>"}
    if resume and (out / "config.json").exists():
        saved = read_json(out / "config.json")
        defaults = dataclasses.asdict(SegTrainConfig())  # a setting added since the run started: its default
        diff = [f"{k}: {saved.get(k, defaults.get(k))!r} -> {v!r}" for k, v in config.items()
                if k not in ("threads", "eval_every") and saved.get(k, defaults.get(k)) != v]
        if diff:
            raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])});"
                            " resume with the run's values or choose another --out")
        if (out / "results.json").exists() and last.exists() and load_checkpoint(last)["step"] + 1 >= cfg.steps:
            return read_json(out / "results.json")
    write_json(out / "config.json", config, indent=1)
    model, arch, source = build_model(cfg)
    if cfg.freeze_encoder:
        for p in model.image_encoder.parameters():
            p.requires_grad_(False)
    train_mode(model, cfg.freeze_encoder)
    low_size = 4 * arch.embedding_size
    ds = SegSamples(train_records, arch.img_size, cfg.masks_per_image, cfg.seed, low_size, cfg.min_area, cfg.hflip)
    val_ds = SegSamples(val_records, arch.img_size, cfg.val_masks, cfg.seed, low_size, cfg.min_area)
    box_noise_max = cfg.box_noise_max or 20.0 * arch.img_size / 1024
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    scheduler = warmup_cosine(optimizer, 1, cfg.warmup_steps / cfg.steps, cfg.steps)
    start, metrics, seconds = 0, [], 0.0
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        load_state(model, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        start, metrics, seconds = ckpt["step"] + 1, list(ckpt["metrics"]), float(ckpt.get("seconds", 0.0))
        log(f"resumed {last} after step {start}")
    write_jsonl(out / "metrics.jsonl", metrics)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"SAM {arch.name} ({n_params / 1e6:.2f} M parameters, {arch.img_size} px) from {source}; "
        f"{len(train_records)} train / {len(val_records)} val images; {cfg.steps} steps x {cfg.batch_images} images "
        f"x {cfg.masks_per_image} masks x {cfg.rounds} rounds")
    bar = tqdm(range(start, cfg.steps), desc="training", unit="step", disable=not progress, initial=start,
               total=cfg.steps)
    for step in bar:
        t0 = time.perf_counter()
        samples = step_batch(ds, step, cfg)
        if not samples:
            continue
        lr = optimizer.param_groups[0]["lr"]
        result = train_step(model, samples, cfg, step, box_noise_max)
        if not torch.isfinite(result.loss.detach()):
            raise UserError(f"{out}: the loss is not finite at step {step + 1} (lower lr)")
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        seconds += time.perf_counter() - t0
        row = {"step": step, "loss": float(result.loss.detach()), **result.parts(), "lr": lr,
               "masks": int(sum(len(s["masks"]) for s in samples)), "seconds": time.perf_counter() - t0}
        metrics.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", iou=f"{row['iou_last']:.2f}")
        done = step + 1 == cfg.steps
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and not done and len(val_ds):
            ev = evaluate(model, val_ds, cfg.val_images, cfg.val_masks)
            metrics.append({"step": step, "eval": ev})
            train_mode(model, cfg.freeze_encoder)
            log(f"step {step + 1}: val point mIoU {ev['point_miou']:.3f} (oracle {ev['point_oracle_miou']:.3f}), "
                f"box {ev['box_miou']:.3f}")
        if (step + 1) % cfg.ckpt_every == 0 or done:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "lr_scheduler": scheduler.state_dict(), "step": step, "metrics": metrics,
                             "seconds": seconds, "config": config, "arch": arch.to_dict()}, last)
            write_jsonl(out / "metrics.jsonl", metrics)
            log(f"checkpoint step {step + 1}/{cfg.steps}: loss {row['loss']:.4f}, train IoU first round "
                f"{row['iou_first']:.3f}, last round {row['iou_last']:.3f}")
    bar.close()
    save_sam(out / "sam.pth", model, arch, started_from=source, trained_steps=cfg.steps, data=config["data"])
    results = {"arch": arch.name, "source": source, "steps": cfg.steps, "train_seconds": seconds,
               "first_loss": float(np.mean([m["loss"] for m in metrics if "loss" in m][:20] or [float("nan")])),
               "final_loss": float(np.mean([m["loss"] for m in metrics if "loss" in m][-20:] or [float("nan")])),
               "sam": str(out / "sam.pth")}
    if len(val_ds):
        ev = evaluate(model, val_ds, cfg.val_images, cfg.val_masks, progress)
        results["val"] = ev
        log(f"val ({ev['val_masks']} masks): one point mIoU {ev['point_miou']:.3f}, most confident of 3 "
            f"{ev['point_confident_miou']:.3f}, oracle {ev['point_oracle_miou']:.3f}; box {ev['box_miou']:.3f}")
    write_json(out / "results.json", results, indent=1)
    return results


# ----------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment train",
               description="Train SAM with simulated interactive prompts (paper App. A): a point or a noisy box, "
                           "then corrective clicks from the error region with the previous logits as the mask "
                           "prompt (paper: 11 rounds, focal:dice 20:1, configs/segment/paper.yaml; default: the CPU recipe of "
                           "configs/segment/train.yaml, 2 rounds, 1:1, which learns at this scale) + IoU MSE. "
                           "Settings: --config YAML and key=value "
                           f"(keys: {', '.join(f.name for f in dataclasses.fields(SegTrainConfig))}).")
    p.add_argument("--data", required=True, help="SA-1B folder, or a folder of splits (train/ and val/, as "
                   "`vislearn segment generate-data` writes)")
    p.add_argument("--val", default=None, help="validation SA-1B folder (default: DATA/val when DATA has splits)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", default=None, help=f"YAML config (default {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[2])})")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--arch", default=None, help=f"start from fresh weights of this size: {', '.join(ARCHS)}")
    start.add_argument("--encoder", default=None, help="start the image encoder from this encoder checkpoint "
                       "(RUN/encoder.pth of `vislearn pretrain mae`); the rest fresh")
    start.add_argument("--init", default=None, help="start from this SAM checkpoint (ours or an official .pth)")
    p.add_argument("--freeze-encoder", action="store_true", help="train the prompt encoder and mask decoder only")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config settings, e.g. steps=200 lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace files of the run's names in --out that vislearn "
                   "did not write")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for key in ("arch", "encoder", "init"):
        if getattr(args, key):
            overrides.append(f"{key}={getattr(args, key)}")
    if args.freeze_encoder:
        overrides.append("freeze_encoder=true")
    cfg = load_config(args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None), overrides)
    train(cfg, args.data, args.out, val=args.val, resume=args.resume, overwrite=args.overwrite)
    return 0


main = command(build_parser, run)
