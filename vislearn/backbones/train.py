"""`vislearn backbones train --backbone NAME --data SOURCE --out RUN`: train an image classifier on a backbone.

A plain loop in the style of torchvision's references (`main`, `train_one_epoch`, `evaluate`): in-memory uint8
images (`vislearn.backbones.imagesets.load_images`: "objects", "digits", a folder or an .npz), light augmentation
(random crop with padding or random resized crop, horizontal flip), per-channel normalisation (the train split's
mean and std), AdamW (betas 0.9/0.999) or SGD (momentum 0.9, optional Nesterov), a cosine learning rate with a
linear warm-up (stepped per iteration), optional label smoothing.

`--weights FILE` starts the backbone from an encoder checkpoint (timm names or the pycls layout; its head, if any,
is dropped and a new linear head of the data's classes is attached); `--freeze` then trains the head only (a linear
probe: the backbone, BatchNorm statistics included, does not change). In Python: `fit(TrainConfig(...))`.

The run folder (`--out`, locked while a run writes it) gets: config.json (the resolved arguments), last.pt
(written atomically every epoch: model, optimizer, schedule, RNG states; a killed run continues with `--resume`
and ends with the same weights as an uninterrupted one), best.pt (the epoch of lowest val error), metrics.jsonl
(one line per epoch: train loss, val error), results.json (val and test error of the final epoch, the main
numbers, and of the best-by-val epoch; the test split is never used to choose anything).
Exit codes: 0 done, 2 bad input, 3 stopped on a non-finite loss (results.json says `diverged`).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.cli import Parser, run_main
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, input_file
from vislearn.common.freeze import freeze
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session

from .optim import param_groups, warmup_cosine
from .registry import BACKBONES, INPUT_SHAPES, create_backbone

EXIT_DIVERGED = 3
RUN_FILES = ("config.json", "last.pt", "best.pt", "metrics.jsonl", "results.json")
KIND = "backbones train"


@dataclass
class TrainConfig:
    """Everything a run depends on (the command's flags; saved as config.json)."""

    backbone: str = "vit_c_tiny"
    data: str = "objects"            # "objects", "digits", a folder or an .npz (`imagesets.load_images`)
    out: str = ""
    img_size: int = 64
    optimizer: str = "adamw"         # adamw | sgd
    lr: float = 1e-3
    wd: float = 0.05
    momentum: float = 0.9            # SGD only
    nesterov: bool = False           # SGD only
    epochs: int = 30
    warmup_epochs: float = 5.0
    batch_size: int = 64
    label_smoothing: float = 0.0
    augment: str = "crop"            # crop (pad + random crop) | rrc (random resized crop) | none
    flip: bool = True
    train_images: int = 0            # 0: the whole train split; else a fixed random subset (data_seed)
    val_images: int = 0              # 0: the whole val split
    data_seed: int = 0               # which subset (the same for every run seed)
    seed: int = 0
    weights: str | None = None       # encoder checkpoint to start the backbone from
    freeze: bool = False             # train the head only (linear probe)
    drop_path: float = 0.0
    clip_grad: float = 0.0           # max grad norm; 0: no clipping
    threads: int = 0                 # torch CPU threads; 0: torch's default
    device: str = "cpu"

    def validate(self) -> None:
        """Each field in range (a one-line UserError naming the flag), and the backbone and weights file exist."""
        def need(ok: bool, flag: str, what: str, value) -> None:
            if not ok:
                raise UserError(f"--{flag.replace('_', '-')}: {what}, got {value!r}")

        if self.backbone not in BACKBONES:
            raise UserError(f"--backbone: unknown backbone {self.backbone!r}; choose from "
                            f"{', '.join(n for n in BACKBONES if len(INPUT_SHAPES.get(n, ())) == 3)}")
        if len(INPUT_SHAPES.get(self.backbone, ())) != 3:
            raise UserError(f"--backbone: {self.backbone!r} is a video trunk, not an image classifier")
        need(self.optimizer in ("adamw", "sgd"), "optimizer", "expected adamw or sgd", self.optimizer)
        need(self.augment in ("crop", "rrc", "none"), "augment", "expected crop, rrc or none", self.augment)
        for key in ("lr",):
            v = getattr(self, key)
            need(math.isfinite(v) and v > 0, key, "must be a number > 0", v)
        for key in ("wd", "warmup_epochs", "label_smoothing", "clip_grad", "drop_path"):
            v = getattr(self, key)
            need(math.isfinite(v) and v >= 0, key, "must be a number >= 0", v)
        need(self.label_smoothing < 1, "label_smoothing", "must be below 1", self.label_smoothing)
        need(0 <= self.momentum < 1, "momentum", "must be in [0, 1)", self.momentum)
        for key in ("epochs", "batch_size", "img_size"):
            need(getattr(self, key) >= 1, key, "must be at least 1", getattr(self, key))
        for key in ("train_images", "val_images", "threads"):
            need(getattr(self, key) >= 0, key, "must be >= 0", getattr(self, key))
        need(self.img_size % 16 == 0 or not self.backbone.startswith("vit_"), "img_size",
             "a ViT takes a multiple of 16 (16x16 patches)", self.img_size)
        need(bool(self.out), "out", "a run folder is required", self.out)
        if self.freeze and not self.weights:
            raise UserError("--freeze: trains the head only, so it needs --weights (an encoder checkpoint)")
        if self.weights:
            input_file(self.weights, "weights file", "an encoder checkpoint file")
            if not self.backbone.startswith("vit_"):
                raise UserError(f"--weights: only the ViT backbones load an encoder checkpoint here, not {self.backbone!r}")


# ----------------------------------------------------------------------------- data
@dataclass
class Split:
    """A split as normalised-on-the-fly uint8 tensors."""

    images: torch.Tensor  # uint8 [N,3,H,W]
    labels: torch.Tensor  # int64 [N]


def subset(images, labels, n: int, seed: int) -> Split:
    if n <= 0 or n >= len(labels):
        return Split(images, labels)
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return Split(images[idx], labels[idx])


def load_splits(cfg: TrainConfig, data: dict | None = None) -> tuple[dict[str, Split], tuple[str, ...]]:
    """train / val (/ test when the source has one) as `Split`s, and the class names. `data`: splits already in
    memory (name -> an object with .images, .labels, .classes, as `imagesets.LabelledImages`), else loaded."""
    if data is None:
        from .imagesets import load_images  # noqa: PLC0415  (loaded only when a run reads a source)

        data = {}
        for split in ("train", "val", "test"):
            try:
                data[split] = load_images(cfg.data, split, size=cfg.img_size, seed=cfg.data_seed)
            except UserError:
                if split != "test":
                    raise
    for split in ("train", "val"):
        if split not in data:
            raise UserError(f"{cfg.data}: has no {split} split (train and val are needed; test is optional)")
    classes = tuple(data["train"].classes)
    splits = {}
    for name, d in data.items():
        images, labels = d.images, d.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"{cfg.data}: {name} images must be uint8 [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != (cfg.img_size, cfg.img_size):
            raise UserError(f"{cfg.data}: {name} images are {images.shape[-1]}x{images.shape[-2]}, expected "
                            f"{cfg.img_size}x{cfg.img_size} (--img-size)")
        if len(labels) != len(images) or len(labels) == 0:
            raise UserError(f"{cfg.data}: {name} has {len(images)} images and {len(labels)} labels")
        if int(labels.min()) < 0 or int(labels.max()) >= len(classes):
            raise UserError(f"{cfg.data}: {name} labels must be in 0..{len(classes) - 1} (the train split's classes)")
        n = cfg.train_images if name == "train" else cfg.val_images if name == "val" else 0
        splits[name] = subset(images, labels.long(), n, cfg.data_seed)
    return splits, classes


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (images.float() / 255 - m) / s


def augment(images: torch.Tensor, how: str, flip: bool, g: torch.Generator) -> torch.Tensor:
    """A batch of uint8 images, randomly cropped (and flipped) with the generator `g`."""
    n, _, h, w = images.shape
    if how == "crop":  # zero padding of an eighth of the size, then a random crop of the original size
        pad = max(1, h // 8)
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
        images = torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy, dx))])
    elif how == "rrc":  # scale (0.35, 1), aspect (3/4, 4/3), resized back bilinearly
        scale = torch.empty(n).uniform_(0.35, 1.0, generator=g)
        ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g))
        cw = (torch.sqrt(scale * ratio) * w).clamp(4, w).long()
        ch = (torch.sqrt(scale / ratio) * h).clamp(4, h).long()
        u = torch.rand(n, 2, generator=g)
        out = []
        for i in range(n):
            y = int(u[i, 0] * (h - ch[i] + 1))
            x = int(u[i, 1] * (w - cw[i] + 1))
            crop = images[i:i + 1, :, y:y + ch[i], x:x + cw[i]].float()
            out.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True))
        images = torch.cat(out).round().clamp(0, 255).to(torch.uint8)
    if flip:
        mask = torch.rand(n, generator=g) < 0.5
        images = torch.where(mask.view(n, 1, 1, 1), images.flip(-1), images)
    return images


# ----------------------------------------------------------------------------- model, optimizer, schedule
def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    kwargs = {"img_size": cfg.img_size} if cfg.backbone.startswith("vit_") else {}
    if cfg.drop_path:
        kwargs["drop_path_rate"] = cfg.drop_path
    if cfg.weights:
        # the encoder without its head (a file with or without one loads), then a new head for these classes
        model = create_backbone(cfg.backbone, weights=cfg.weights, num_classes=0, **kwargs)
        model.reset_classifier(num_classes)
        if cfg.freeze:
            freeze(model, keep=model.head)
        return model
    return create_backbone(cfg.backbone, num_classes=num_classes, **kwargs)


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.wd)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


# ----------------------------------------------------------------------------- the loop
class Diverged(Exception):
    pass


def train_one_epoch(model, split: Split, optimizer, scheduler, cfg: TrainConfig, epoch: int, stats, device,
                    progress: bool = False) -> dict:
    model.train()
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # shuffling and augmentation of this epoch
    order = torch.randperm(len(split.labels), generator=g)
    n_batches = len(order) // cfg.batch_size or 1  # drop the last partial batch (when there is more than one)
    total_loss, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch")
    for b in range(n_batches):
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        x = normalise(augment(split.images[idx], cfg.augment, cfg.flip, g), *stats).to(device)
        y = split.labels[idx].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise Diverged(f"non-finite loss at epoch {epoch + 1}, batch {b + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        optimizer.step()
        scheduler.step()
        total_loss += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    return {"train_loss": total_loss / seen, "train_error": 1 - correct / seen, "train_seconds": seconds,
            "train_images_per_s": seen / seconds}


@torch.no_grad()
def evaluate(model, split: Split, stats, device, batch_size: int = 256) -> dict:
    """Top-1 error and mean cross-entropy on a split (eval mode, no augmentation)."""
    model.eval()
    wrong, loss = 0, 0.0
    for i in range(0, len(split.labels), batch_size):
        x = normalise(split.images[i:i + batch_size], *stats).to(device)
        y = split.labels[i:i + batch_size].to(device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        wrong += int((logits.argmax(1) != y).sum())
    n = len(split.labels)
    return {"error": wrong / n, "loss": loss / n, "images": n}




def fit(cfg: TrainConfig, data: dict | None = None, resume: bool = False, log=print, progress: bool | None = None,
        overwrite: bool = False) -> dict:
    """Train the run `cfg.out` (or continue it with `resume`) and return its results (results.json's content).
    A finished run (results.json there, same config) is not trained again with `resume`: its results are returned.
    `data`: splits in memory (name -> `imagesets.LabelledImages`), instead of loading `cfg.data`."""
    with session():
        return _fit(cfg, data, resume, log, sys.stderr.isatty() if progress is None else progress, overwrite)


def _config_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def _fit(cfg: TrainConfig, data, resume: bool, log, progress: bool, overwrite: bool = False) -> dict:
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from vislearn.common.device import resolve_device  # noqa: PLC0415

    device = resolve_device(cfg.device, key="--device")
    out = Path(cfg.out)
    last, best_path = out / "last.pt", out / "best.pt"
    claim = claim_folder(out, kind=KIND, lock=True, flag="--out", overwrite=overwrite)
    if last.exists() and not resume:
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    claim.check(RUN_FILES, overwrite or (resume and last.exists()), [cfg.weights])
    if resume and (out / "config.json").exists():
        saved = read_json(out / "config.json")
        diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in _config_dict(cfg).items()
                if k not in ("out", "threads", "device") and saved.get(k) != v]
        if diff:
            raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])}); "
                            f"resume with the run's values or choose another --out")
        if (out / "results.json").exists() and last.exists():
            return read_json(out / "results.json")

    if cfg.weights:  # a file that is no encoder checkpoint: one line now, before the data is read
        from .vit import read_vit_state  # noqa: PLC0415

        read_vit_state(cfg.weights)
    torch.manual_seed(cfg.seed)
    splits, classes = load_splits(cfg, data)
    stats = channel_stats(splits["train"].images)
    model = build_model(cfg, len(classes)).to(device)
    optimizer = build_optimizer(cfg, model)
    steps = len(splits["train"].labels) // cfg.batch_size or 1
    scheduler = warmup_cosine(optimizer, cfg.epochs, cfg.warmup_epochs, steps)
    start, best, metrics = 0, {"epoch": -1, "val_error": 2.0}, []
    if resume and last.exists():
        ckpt = load_checkpoint(last, map_location=device)
        load_state(model, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        set_rng_state(ckpt["rng"])
        start, best, metrics = ckpt["epoch"] + 1, ckpt["best"], list(ckpt["metrics"])
        log(f"resumed {last} after epoch {start}")
    write_json(out / "config.json", _config_dict(cfg), indent=1)
    write_jsonl(out / "metrics.jsonl", metrics)
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"{cfg.backbone} ({n_params / 1e6:.2f} M parameters, {trainable / 1e6:.2f} M trained) on {cfg.data} "
        f"{cfg.img_size}px: {len(splits['train'].labels)} train, {len(splits['val'].labels)} val"
        + (f", {len(splits['test'].labels)} test" if "test" in splits else "") + f" images, {len(classes)} classes")

    diverged = None
    for epoch in range(start, cfg.epochs):
        lr = optimizer.param_groups[0]["lr"]
        try:
            row = train_one_epoch(model, splits["train"], optimizer, scheduler, cfg, epoch, stats, device, progress)
        except Diverged as e:
            diverged = str(e)
            log(f"stopped: {e} (the last good checkpoint, of epoch {len(metrics)}, is kept)")
            break
        val = evaluate(model, splits["val"], stats, device)
        row = {"epoch": epoch, "lr": lr, **row, "val_error": val["error"], "val_loss": val["loss"]}
        metrics.append(row)
        improved = val["error"] < best["val_error"]
        if improved:
            best = {"epoch": epoch, "val_error": val["error"]}
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "lr_scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(), "best": best,
                 "metrics": metrics, "config": _config_dict(cfg), "backbone": cfg.backbone,
                 "backbone_args": {"img_size": cfg.img_size, "num_classes": len(classes)},
                 "classes": list(classes), "input_size": cfg.img_size, "mean": stats[0], "std": stats[1]}
        save_checkpoint(state, last)
        if improved:
            with atomic_path(best_path) as tmp:
                shutil.copyfile(last, tmp)
        write_jsonl(out / "metrics.jsonl", metrics)
        log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr:.3g} | train loss {row['train_loss']:.4f} error "
            f"{row['train_error']:.3f} | val error {val['error']:.4f}{' *' if improved else ''} | "
            f"{row['train_seconds']:.1f}s, {row['train_images_per_s']:.0f} images/s")

    results = {"backbone": cfg.backbone, "data": cfg.data, "img_size": cfg.img_size, "optimizer": cfg.optimizer,
               "lr": cfg.lr, "wd": cfg.wd, "epochs": cfg.epochs, "seed": cfg.seed, "parameters": n_params,
               "trained_parameters": trainable, "classes": len(classes), "diverged": diverged,
               "epochs_done": len(metrics)}
    final = {"epoch": len(metrics) - 1, "val_error": metrics[-1]["val_error"] if metrics else 1.0}
    if diverged is not None:  # the weights are not finite: the run counts as failed (error 1)
        final = {"epoch": len(metrics) - 1, "val_error": 1.0, "test_error": 1.0 if "test" in splits else None}
        results["final"], results["best"] = final, {**best, "test_error": None}
    else:
        if "test" in splits:
            final["test_error"] = evaluate(model, splits["test"], stats, device)["error"]
        results["final"] = final
        if best["epoch"] >= 0 and "test" in splits:
            best = dict(best)
            if best["epoch"] == final["epoch"]:
                best["test_error"] = final["test_error"]
            else:
                load_state(model, load_checkpoint(best_path, map_location=device)["model"], best_path)
                best["test_error"] = evaluate(model, splits["test"], stats, device)["error"]
        results["best"] = best
    results["train_seconds"] = sum(m["train_seconds"] for m in metrics)
    write_json(out / "results.json", results, indent=1)
    t = results["final"].get("test_error")
    log(f"final (epoch {final['epoch'] + 1}): val error {final['val_error']:.4f}"
        + (f", test error {t:.4f}" if t is not None else "") + f"; best val epoch {best['epoch'] + 1}")
    return results


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = Parser(prog="vislearn backbones train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=d.backbone, help="an image backbone (`vislearn backbones list`), e.g. vit_c_tiny")
    p.add_argument("--data", default=d.data, help="objects | digits | a folder | an .npz (default %(default)s)")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--img-size", type=int, default=d.img_size, help="input size in pixels (default %(default)s)")
    p.add_argument("--optimizer", default=d.optimizer, choices=("adamw", "sgd"))
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--wd", type=float, default=d.wd, help="weight decay (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (default %(default)s)")
    p.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--augment", default=d.augment, choices=("crop", "rrc", "none"),
                   help="crop: zero-pad an eighth and crop back; rrc: random resized crop (default %(default)s)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flip")
    p.add_argument("--train-images", type=int, default=d.train_images, help="use a fixed random subset of train (0: all)")
    p.add_argument("--val-images", type=int, default=d.val_images, help="use a fixed random subset of val (0: all)")
    p.add_argument("--data-seed", type=int, default=d.data_seed, help="which subset (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--weights", default=None, help="encoder checkpoint to start the backbone from (head dropped)")
    p.add_argument("--freeze", action="store_true", help="train the new head only (linear probe; needs --weights)")
    p.add_argument("--drop-path", type=float, default=d.drop_path, help="stochastic depth rate (ViTs)")
    p.add_argument("--clip-grad", type=float, default=d.clip_grad, help="max gradient norm (0: none)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace files of the run's names in --out that vislearn "
                   "did not write")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> int:
        results = fit(config_from_args(args), resume=args.resume, overwrite=args.overwrite)
        return EXIT_DIVERGED if results.get("diverged") else 0

    return run_main(work)


if __name__ == "__main__":
    sys.exit(main())
