"""`vislearn pretrain {moco,resim,looc} --data DATA --out RUN`: one training loop for the three learners
(`methods.py`), on one device.

Data: a folder of images or videos (`vislearn.pretrain.frames`: the renders' frames, any frame folders), or an image
set by name (`objects`, `digits`: its train split, labels unused). Frames are decoded once into the run's frame bank.

The run folder (locked while a run writes it): config.json, frames.npy + frames.json (folders only), last.pt (every
epoch, atomic: learner, optimizer, schedule, both RNG streams), metrics.jsonl, encoder.pth (the query encoder in the
encoder contract: `create_backbone(name, weights="RUN/encoder.pth")`, or a detector's `--backbone-weights`),
learner.pt (encoder, heads and queues: the embedding spaces LooC is evaluated in), results.json, curves.png and
index.html. `--resume` continues a killed run and ends with the same weights as an uninterrupted one.

Recipe: MoCo-v2's (SGD momentum 0.9, weight decay 1e-4, cosine schedule, temperature 0.2, MLP heads), scaled to
runs of a few hundred CPU steps: lr = blr x batch / 256 with blr 0.3 (MoCo's 0.03), key momentum 0.9 (MoCo's 0.999)
and a queue of 1024 (MoCo's 65,536), and BatchNorm in the heads (`core.ProjectionHead`). Measured on the object set,
batch 64, 80 steps (the InfoNCE loss; nothing evaluated): with MoCo's momentum 0.99-0.999 and a 4096 queue the loss
rose for the whole run (6.4 -> 8.0) while every key collapsed onto one direction; with 0.9 and 1024 it falls from
step 30 (6.84 -> 6.36) at blr 0.3, against 6.55 at blr 0.03 and 6.87 at blr 1.0.
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
from tqdm import tqdm

from vislearn.backbones import create_backbone
from vislearn.backbones.dense import MULTISCALE
from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD, EncoderInfo, encoder_checkpoint
from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import write_json, write_jsonl
from vislearn.common.outputs import session
from vislearn.common.validate import setting, validate

from ..frames import bank_side
from ..runs import add_config_flags, add_run_flags, open_run
from ..train_mae import load_bank as run_frame_bank
from .methods import METHODS, ContrastiveLearner, LearnerSpec, looc_loss, moco_loss, resim_loss
from .views import AUGMENTATIONS, AugmentConfig, draw_view, render_views

IMAGE_SETS = ("objects", "digits")
RUN_FILES = ("config.json", "frames.npy", "frames.json", "last.pt", "metrics.jsonl", "encoder.pth", "learner.pt",
             "results.json", "curves.png", "index.html")
DEFAULT_AUGMENT = {"moco": "colour,texture", "resim": "colour,texture", "looc": "colour,rotation,texture"}


@dataclass
class ContrastConfig:
    method: str = setting("moco", choices=METHODS)
    data: str = ""
    out: str = ""
    backbone: str = setting("mobilenet_v2_ms", choices=tuple(MULTISCALE))
    fpn_channels: int = setting(0, min=0)  # a feature pyramid over C3-C5 (ReSim-FPN; the detector's is 128)
    img_size: int = setting(64, min=32)
    augment: str = ""  # the optional augmentations: colour, rotation, texture ("" = the method's default)
    epochs: int = setting(10, min=1)
    steps_per_epoch: int = setting(0, min=0)  # 0: one pass over the frame bank
    batch_size: int = setting(64, min=2)
    blr: float = setting(0.3, above=0)
    weight_decay: float = setting(1e-4, min=0)
    dim: int = setting(128, min=2)
    hidden: int = setting(512, min=2)
    queue: int = setting(1024, min=1)
    temperature: float = setting(0.2, above=0)
    momentum: float = setting(0.9, min=0.0, max=1.0)
    key_chunks: int = setting(2, min=1)
    max_windows: int = setting(8, min=1)
    frames_per_video: int = setting(8, min=1)
    max_frames: int = setting(20000, min=1)
    seed: int = 0
    threads: int = setting(0, min=0)

    @property
    def lr(self) -> float:
        return self.blr * self.batch_size / 256

    @property
    def augmentations(self) -> tuple[str, ...]:
        text = self.augment or DEFAULT_AUGMENT[self.method]
        return tuple(a.strip() for a in text.split(",") if a.strip())

    def augment_config(self) -> AugmentConfig:
        names = self.augmentations
        return AugmentConfig(jitter_p=0.8 if "colour" in names else 0.0, gray_p=0.2 if "colour" in names else 0.0,
                             blur_p=0.5 if "texture" in names else 0.0, rotate="rotation" in names)

    def spec(self) -> LearnerSpec:
        return LearnerSpec(self.method, self.dim, self.hidden, self.queue, self.temperature, self.momentum,
                           self.key_chunks, self.augmentations if self.method == "looc" else (), self.max_windows)


def check_config(cfg: ContrastConfig) -> None:
    validate(cfg)
    unknown = [a for a in cfg.augmentations if a not in AUGMENTATIONS]
    if unknown:
        raise UserError(f"--augment: unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    if cfg.method == "looc" and not cfg.augmentations:
        raise UserError("--augment: LooC needs at least one augmentation to leave out of an embedding space")
    if cfg.method == "resim" and "rotation" in cfg.augmentations:
        raise UserError("--augment: ReSim maps windows between views by their crops; rotated views are not mapped")


# ----------------------------------------------------------------------------- data
def load_bank(cfg: ContrastConfig, out: Path, log) -> np.ndarray:
    """uint8 [N, S, S, 3] source images (S = `bank_side(img_size)`)."""
    side = bank_side(cfg.img_size)
    if cfg.data in IMAGE_SETS:
        from vislearn.backbones.imagesets import load_images  # noqa: PLC0415

        images = load_images(cfg.data, "train", size=side, seed=0).images
        return images.permute(0, 2, 3, 1).contiguous().numpy()
    return run_frame_bank(cfg, out, log)  # decoded once into the run folder, as MAE's


def batch_views(bank: np.ndarray, idx: np.ndarray, cfg: ContrastConfig, aug: AugmentConfig,
                rng: np.random.Generator) -> dict:
    """The views one step needs: "query" and "keys" (one list of views per key; MoCo and ReSim have one key)."""
    side = bank.shape[1]
    queries = [draw_view(rng, side, aug) for _ in idx]
    if cfg.method == "looc":
        shares = [()] + [(name,) for name in cfg.augmentations]
    else:
        shares = [()]
    keys = [[draw_view(rng, side, aug, q, share) for q in queries] for share in shares]
    return {"query": queries, "keys": keys}


def step_loss(learner: ContrastiveLearner, bank, idx, views: dict, cfg: ContrastConfig, rng, generator):
    xq = normalise_float(render_views(bank, idx, views["query"], cfg.img_size))
    xkeys = [normalise_float(render_views(bank, idx, v, cfg.img_size)) for v in views["keys"]]
    if cfg.method == "moco":
        return moco_loss(learner, xq, xkeys[0], generator)
    if cfg.method == "resim":
        return resim_loss(learner, xq, xkeys[0], views["query"], views["keys"][0], cfg.img_size, rng, generator)
    return looc_loss(learner, xq, xkeys, generator)


def normalise_float(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------- training
def build_learner(cfg: ContrastConfig) -> ContrastiveLearner:
    torch.manual_seed(cfg.seed)
    encoder = create_backbone(cfg.backbone, fpn_channels=cfg.fpn_channels)
    return ContrastiveLearner(encoder, cfg.spec(), torch.Generator().manual_seed(cfg.seed))


def make_optimizer(learner: ContrastiveLearner, cfg: ContrastConfig, steps: int):
    params = [p for m in learner.trainable() for p in m.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps)
    return optimizer, scheduler


def train_one_epoch(learner, bank, optimizer, scheduler, cfg: ContrastConfig, aug, epoch: int, steps: int, rng,
                    generator, progress: bool) -> dict:
    learner.train()
    rows, t0, lr = [], time.perf_counter(), optimizer.param_groups[0]["lr"]
    for _ in tqdm(range(steps), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="step",
                  disable=not progress):
        idx = rng.choice(len(bank), size=cfg.batch_size, replace=len(bank) < cfg.batch_size)
        views = batch_views(bank, idx, cfg, aug, rng)
        loss, stats = step_loss(learner, bank, idx, views, cfg, rng, generator)
        if not torch.isfinite(loss):
            raise UserError(f"{cfg.out}: the loss is not finite at epoch {epoch + 1} (lower --blr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        learner.update_keys()
        rows.append({"loss": float(loss.detach()), **stats})
    seconds = time.perf_counter() - t0
    keys = sorted({k for r in rows for k in r})
    mean = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    return {"epoch": epoch, **mean, "lr": lr, "seconds": seconds, "images_per_s": steps * cfg.batch_size / seconds}


def contrastive_encoder_checkpoint(learner: ContrastiveLearner, cfg: ContrastConfig, epochs: int) -> dict:
    return encoder_checkpoint(learner.encoder, EncoderInfo(
        cfg.backbone, {"fpn_channels": cfg.fpn_channels}, cfg.img_size, IMAGENET_MEAN, IMAGENET_STD,
        {"method": cfg.method, "data": cfg.data, "epochs": epochs, "augment": ",".join(cfg.augmentations),
         "seed": cfg.seed}))


def pretrain(cfg: ContrastConfig, resume: bool = False, log=print, progress: bool | None = None,
             overwrite: bool = False) -> dict:
    """Pre-train (or with `resume`, continue) the run in `cfg.out`; returns results.json's content."""
    with session():
        return _pretrain(cfg, resume, log, sys.stderr.isatty() if progress is None else progress, overwrite)


def _pretrain(cfg: ContrastConfig, resume: bool, log, progress: bool, overwrite: bool) -> dict:
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    last = out / "last.pt"
    done = open_run(cfg, f"pretrain {cfg.method}", RUN_FILES, resume, overwrite,
                    lambda ckpt: ckpt["epoch"] + 1 >= cfg.epochs, [cfg.data] if cfg.data not in IMAGE_SETS else [])
    if done is not None:
        return done
    config = dataclasses.asdict(cfg)
    bank = load_bank(cfg, out, log)
    learner = build_learner(cfg)
    steps = cfg.steps_per_epoch or max(1, len(bank) // cfg.batch_size)
    optimizer, scheduler = make_optimizer(learner, cfg, steps)
    aug = cfg.augment_config()
    rng = np.random.default_rng([cfg.seed, 0xC0])
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    start, metrics = 0, []
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        load_state(learner, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        set_rng_state(ckpt["rng"])
        rng.bit_generator.state = ckpt["view_rng"]
        generator.set_state(ckpt["shuffle_rng"])
        start, metrics = ckpt["epoch"] + 1, list(ckpt["metrics"])
        log(f"resumed {last} after epoch {start}")
    write_jsonl(out / "metrics.jsonl", metrics)
    n_enc = sum(p.numel() for p in learner.encoder.parameters())
    log(f"{cfg.method} {cfg.backbone} ({n_enc / 1e6:.2f} M parameters), {cfg.img_size}px, augmentations "
        f"{', '.join(cfg.augmentations) or 'crop + flip only'}; {len(bank)} images, {steps} steps x {cfg.batch_size}"
        f" per epoch")
    for epoch in range(start, cfg.epochs):
        row = train_one_epoch(learner, bank, optimizer, scheduler, cfg, aug, epoch, steps, rng, generator, progress)
        metrics.append(row)
        save_checkpoint({"model": learner.state_dict(), "optimizer": optimizer.state_dict(),
                         "lr_scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(),
                         "view_rng": rng.bit_generator.state, "shuffle_rng": generator.get_state(),
                         "metrics": metrics, "config": config}, last)
        write_jsonl(out / "metrics.jsonl", metrics)
        parts = " ".join(f"{k[5:]} {v:.3f}" for k, v in row.items() if k.startswith("loss_"))
        log(f"epoch {epoch + 1}/{cfg.epochs} lr {row['lr']:.3g} | loss {row['loss']:.4f} ({parts}) | "
            f"{row['seconds']:.1f}s, {row['images_per_s']:.0f} images/s")
    save_checkpoint(contrastive_encoder_checkpoint(learner, cfg, cfg.epochs), out / "encoder.pth")
    save_checkpoint({"model": learner.state_dict(), "config": config}, out / "learner.pt")
    results = {"method": cfg.method, "backbone": cfg.backbone, "img_size": cfg.img_size, "epochs": cfg.epochs,
               "images": len(bank), "augmentations": list(cfg.augmentations),
               "first_loss": metrics[0]["loss"], "final_loss": metrics[-1]["loss"],
               "train_seconds": sum(m["seconds"] for m in metrics),
               "images_per_s": float(np.mean([m["images_per_s"] for m in metrics])),
               "encoder": str(out / "encoder.pth")}
    from .report import write_run_report  # noqa: PLC0415 (matplotlib only when a run ends)

    write_run_report(metrics, config, results, out)
    write_json(out / "results.json", results, indent=1)
    log(f"loss {results['first_loss']:.4f} (epoch 1) -> {results['final_loss']:.4f}; encoder: {out / 'encoder.pth'}")
    return results


def load_learner(run: str | Path) -> tuple[ContrastiveLearner, ContrastConfig]:
    """A finished run's learner (RUN/learner.pt), in eval mode, and its config."""
    path = Path(run) / "learner.pt" if Path(run).is_dir() else Path(run)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise UserError(f"{path}: not a contrastive run's learner.pt")
    fields = {f.name for f in dataclasses.fields(ContrastConfig)}
    cfg = ContrastConfig(**{k: v for k, v in ckpt["config"].items() if k in fields})
    learner = build_learner(cfg)
    load_state(learner, ckpt["model"], path)
    return learner.eval(), cfg


# ----------------------------------------------------------------------------- command line
HELP = {
    "backbone": "encoder: mobilenet_v2_ms (the detector's body), resnet18_ms, resnet50_ms",
    "fpn_channels": "a feature pyramid of this width over C3-C5 (0: none); ReSim's regions are then pooled from it, "
                    "and a detector with the same width loads it (the detector's default is 128)",
    "img_size": "view size in pixels",
    "augment": "optional augmentations, comma-separated, of colour, rotation, texture (crop and flip are always on)",
    "epochs": "epochs (of --steps-per-epoch steps)",
    "steps_per_epoch": "steps per epoch (0: one pass over the images)",
    "batch_size": "images per step",
    "blr": "base learning rate: lr = blr x batch / 256 (MoCo-v2: 0.03 over 200 epochs)",
    "weight_decay": "SGD weight decay",
    "dim": "embedding size of every head",
    "hidden": "hidden width of the MLP heads",
    "queue": "negatives kept per embedding space (MoCo's queue: 65,536)",
    "temperature": "InfoNCE temperature (MoCo-v2: 0.2)",
    "momentum": "key network momentum (MoCo: 0.999, over 10^5+ steps)",
    "key_chunks": "the key pass runs on a shuffled batch in this many parts, each with its own BatchNorm "
                  "statistics (MoCo's shuffled BN on one device)",
    "max_windows": "ReSim: windows per image and level at most (a random subset)",
    "frames_per_video": "frames taken from each video, evenly spread",
    "max_frames": "images at most (a seeded subset of the sources beyond it)",
    "seed": "seed of the model, the image subset and the views",
    "threads": "torch CPU threads (0: torch's default)",
}
DESCRIPTIONS = {
    "moco": "MoCo-v2 pre-training (momentum encoder, queue of negatives, InfoNCE): the baseline ReSim and LooC are "
            "measured against.",
    "resim": "ReSim pre-training: MoCo-v2 plus InfoNCE between windows slid over the overlap of two views, pooled "
             "from C4 and C3 with roi_align (Region Similarity Representation Learning, ICCV 2021).",
    "looc": "LooC pre-training: a shared encoder with one embedding space per augmentation, invariant to all the "
            "others, plus the all-invariant space (What Should Not Be Contrastive in Contrastive Learning, ICLR "
            "2021).",
}


def build_parser(method: str) -> argparse.ArgumentParser:
    p = Parser(prog=f"vislearn pretrain {method}", description=DESCRIPTIONS[method] + " Writes RUN/encoder.pth for "
               "every family to load.")
    p.add_argument("--data", required=True, help="folder (or file) of images / videos, searched recursively, or an "
                   f"image set: {', '.join(IMAGE_SETS)} (its train split)")
    p.add_argument("--out", required=True, help="run folder")
    add_config_flags(p, ContrastConfig(method=method), HELP, skip=("method", "data", "out"),
                     shown={"augment": DEFAULT_AUGMENT[method]})
    add_run_flags(p)
    return p


def method_main(method: str):
    def run(args: argparse.Namespace) -> int:
        cfg = ContrastConfig(method=method, **{f.name: getattr(args, f.name) for f in dataclasses.fields(ContrastConfig)
                                               if f.name != "method"})
        pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
        return 0

    return command(lambda: build_parser(method), run)
