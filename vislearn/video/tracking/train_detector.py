"""`vislearn video tracking train-detector`: train the hand/object detector on Something-Else boxes.

Run folder (`--out RUN`):
  config.json      the resolved options and the detector spec
  last.pt          checkpoint after every epoch (model, optimizer, lr_scheduler, epoch, rng, spec,
                   metrics, best), written atomically; `--resume` continues from it
  best.pt          the model with the best held-out mAP@0.5 so far (what `detect` loads from RUN)
  metrics.jsonl    one line per epoch: losses, lr, held-out AP
  results.json     final figures: held-out AP per class, best epoch, data counts
`--resume` continues with the options the run was started with (data, network, schedule); only
`--epochs` (to extend the run), `--workers`, `--device` and `--amp` may change; any other option given
that differs from the run's is refused, naming it (one equal to the run's is fine).
Training stops (`Diverged`, exit 3 from the CLI) when the loss or the weights become NaN/inf: the
diverged epoch is never saved, so last.pt and best.pt stay the last good ones.
Held-out videos: the split's validation list (`--split DIR` with train.json/validation.json or the
SSv2 file names), else a seeded `--val-fraction` of the annotated videos. Never the test set.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vislearn.common.checkpoint import load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.device import resolve_device
from vislearn.common.errors import UserError
from vislearn.common.outputs import claim_folder, session
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.video.data.annotations import BoxSource
from vislearn.video.data.box_store import open_boxes
from vislearn.video.data.split_layout import split_files
from vislearn.common.video import list_videos, open_video
from .detections import CLASSES
from .detector import (CHECKPOINT_KIND, DEFAULT_ARCH, DEFAULT_WEIGHTS, DetectorSpec, FrameSamples, VideoItem,
                       box_targets, build_detector, collate, default_spec, describe_backbone_load,
                       load_backbone_from_classifier,
                       load_detector_init, predict, read_checkpoint)


def warmup_cosine(total_iters: int, warmup_iters: int) -> Callable[[int], float]:
    """LR factor per iteration: linear warm-up from 0.001, then cosine decay to 0."""
    def factor(it: int) -> float:
        if it < warmup_iters:
            return 0.001 + (1 - 0.001) * it / max(1, warmup_iters)
        progress = (it - warmup_iters) / max(1, total_iters - warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def train_one_epoch(model: nn.Module, loader, optimizer, scheduler, device: torch.device, epoch: int,
                    scaler=None, progress=None, clip_grad: float | None = None) -> dict:
    """One pass over the loader; returns the mean of each loss term, the frames seen and the last lr.
    `clip_grad`: largest gradient norm (clipped above it; None: no clipping)."""
    model.train()
    sums: dict[str, float] = {}
    steps = frames = 0
    it = progress(loader, f"epoch {epoch}") if progress else loader
    for images, targets in it:
        if not images:
            continue
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        with torch.autocast(device.type, enabled=scaler is not None):
            losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch}: loss is {loss.item()} ({ {k: round(v.item(), 4) for k, v in losses.items()} })")
        optimizer.zero_grad(set_to_none=True)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            optimizer.step()
        scheduler.step()
        steps += 1
        frames += len(images)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        if progress and hasattr(it, "set_postfix"):
            it.set_postfix(loss=f"{sums['loss'] / steps:.3f}")
    out = {k: v / max(1, steps) for k, v in sums.items()}
    out.update({"steps": steps, "frames": frames, "lr": optimizer.param_groups[0]["lr"]})
    return out


def evaluate_ap(model: nn.Module, loader, device: torch.device, classes: Sequence[str] = CLASSES, progress=None,
                ignore: BoxSource | None = None) -> dict:
    """Box AP (see `ap.py`) of the model on a loader of held-out frames, and the frames/s of the
    detector alone (forward passes, no decoding). With `ignore` (boxes of unannotated objects, e.g. the
    synthetic set's distractors): also the AP with detections on them ignored (`ignoring` in the result).
    """
    from .ap import box_ap

    preds, gts = [], []
    seconds = 0.0
    it = progress(loader, "held-out AP") if progress else loader
    for images, targets in it:
        if not images:
            continue
        start = time.perf_counter()
        preds += predict(model, images, device)
        seconds += time.perf_counter() - start
        for im, t in zip(images, targets):
            gt = {"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy() - 1}
            if ignore is not None and t["video_id"] in ignore:
                gt["ignore_boxes"], gt["ignore_labels"] = box_targets(ignore.get(t["video_id"]), t["frame"],
                                                                      im.shape[2], im.shape[1])
            gts.append(gt)
    out = box_ap(preds, [{"boxes": g["boxes"], "labels": g["labels"]} for g in gts], classes)
    out["frames_per_s"] = len(preds) / max(seconds, 1e-9)
    if ignore is not None:
        out["ignoring"] = box_ap(preds, gts, classes)
    return out


def ap_row(ap: dict) -> dict:
    """The flat figures of `evaluate_ap` that metrics.jsonl and results.json keep."""
    row = {"map50": ap["map50"], "map75": ap["map75"], "map": ap["map"], **{f"ap50_{c}": v for c, v in ap["ap50"].items()},
           **{f"ap75_{c}": v for c, v in ap["ap75"].items()}, **{f"ap_{c}": v for c, v in ap["ap"].items()},
           "heldout_frames": ap["images"],
           "detect_frames_per_s": round(ap["frames_per_s"], 2)}
    if "ignoring" in ap:
        ign = ap["ignoring"]
        row.update({"map50_ignoring": ign["map50"], "map75_ignoring": ign["map75"], "map_ignoring": ign["map"],
                    **{f"ap50_{c}_ignoring": v for c, v in ign["ap50"].items()},
                    **{f"ap75_{c}_ignoring": v for c, v in ign["ap75"].items()},
                    **{f"ap_{c}_ignoring": v for c, v in ign["ap"].items()}})
    return row


# The defaults are the recipe the README measures ("Tracked boxes": object AP@0.5 0.727 on the demo data;
# commit 4f055c6): 30 epochs of 2 random frames of 4 videos per step, lr 0.02 after 200 warm-up steps,
# every backbone stage training (BatchNorm frozen). `video.actions.detected_boxes` passes the same values.
DEFAULT_EPOCHS = 30
# trainable_layers that trains every backbone stage: the MobileNetV2 bodies have 6 stages, torchvision's
# ResNet 5, and `detector._freeze_stages` clamps a larger count to all of them
EVERY_STAGE = 6


@dataclass
class TrainOptions:
    out: str
    boxes: str
    videos: str
    split: str | None = None
    val_fraction: float = 0.2
    arch: str = DEFAULT_ARCH
    min_size: int | None = None  # None: the training frames' shorter side (MobileNetV2), else the arch's
    max_size: int | None = None
    backbone_weights: str | None = None  # None: the arch's default (DEFAULT_WEIGHTS); "none": random
    init: str | None = None
    trainable_layers: int | None = None  # backbone stages that train; None: every stage (EVERY_STAGE)
    epochs: int | None = None  # None: DEFAULT_EPOCHS, or the run's own when resuming
    frames_per_video: int = 2
    eval_frames_per_video: int = 8
    eval_every: int = 1  # held-out AP every this many epochs and after the last (0: after the last only)
    batch_size: int = 8  # images per step: batch_size // frames_per_video videos x frames_per_video frames
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    clip_grad: float | None = 10.0  # gradient-norm clipping (a few videos per step make noisy gradients)
    workers: int = 0
    device: str = "auto"
    amp: bool = False
    seed: int = 0
    max_videos: int | None = None
    ignore_boxes: str | None = None  # boxes of unannotated objects: held-out AP also with detections on them ignored
    extra: dict = field(default_factory=dict)


class Diverged(UserError):
    """The loss or the weights became non-finite: training stopped, the last good checkpoint kept."""


EXIT_DIVERGED = 3  # as `vislearn video train`'s EXIT_NAN

# options whose value must be a finite number: (field, lowest, lowest allowed itself, highest allowed or None);
# a learning rate beyond float32's range is no step at all (SGD cannot even convert it for the weights)
_NUMBERS = (("lr", 0.0, False, float(np.finfo(np.float32).max)), ("weight_decay", 0.0, True, None), ("momentum", 0.0, True, 1.0),
            ("val_fraction", 0.0, True, 1.0), ("clip_grad", 0.0, False, None))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(opts: TrainOptions) -> None:
    """Hyperparameters that cannot train (NaN, inf, a learning rate of 0 or less, ...): one line naming
    the option, before anything is read or written."""
    for name, low, low_ok, high in _NUMBERS:
        v = getattr(opts, name)
        if v is None and name == "clip_grad":
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
            and (v >= low if low_ok else v > low) and (high is None or v <= high)
        if not ok:
            where = (f"{low:g} or more" if low_ok else f"above {low:g}") + (
                f" and at most {high:g}" if high is not None else "")
            raise UserError(f"{_flag(name)} {v}: must be a finite number {where}")
    for name in ("epochs", "batch_size", "frames_per_video", "eval_frames_per_video"):
        v = getattr(opts, name)
        if v is not None and v < 1:
            raise UserError(f"{_flag(name)} {v}: must be at least 1")


# what --resume may change; every other option given must equal the run's
RESUME_MAY_CHANGE = ("out", "epochs", "workers", "device", "amp")
_PATHS = ("boxes", "videos", "split", "init", "ignore_boxes", "backbone_weights")


def _same(name: str, a, b) -> bool:
    if a == b:
        return True
    if name in _PATHS and isinstance(a, str) and isinstance(b, str):
        return os.path.realpath(a) == os.path.realpath(b)
    return False


def resume_conflicts(opts: TrainOptions, saved: TrainOptions, given: set[str] | None = None) -> list[str]:
    """'--lr 0.5 (the run's: 0.01)' for each option in `given` (the fields set on the command line; None:
    those that differ from TrainOptions' defaults) that differs from the run's saved value and that
    --resume would otherwise ignore."""
    defaults = TrainOptions(out="", boxes="", videos="")
    if given is None:
        given = {f for f in TrainOptions.__dataclass_fields__ if getattr(opts, f) != getattr(defaults, f)}
    resolved = fresh_options(replace(opts, epochs=opts.epochs or 1))  # the names resolved as a new run resolves them
    out = []
    for name in sorted(given & set(TrainOptions.__dataclass_fields__)):
        if name in RESUME_MAY_CHANGE or name == "extra":
            continue
        mine = getattr(resolved, name) if name in ("backbone_weights", "trainable_layers") else getattr(opts, name)
        if not _same(name, mine, getattr(saved, name)):
            out.append(f"{_flag(name)} {getattr(opts, name)} (the run's: {getattr(saved, name)})")
    return out


def _non_finite(model: nn.Module) -> list[str]:
    """Names of the model's floating-point tensors (parameters and buffers) holding NaN or inf."""
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def fresh_options(opts: TrainOptions) -> TrainOptions:
    """The options a new run starts with (what config.json records): the defaults left open filled in."""
    weights = DEFAULT_WEIGHTS.get(opts.arch) if opts.backbone_weights is None else opts.backbone_weights
    layers = EVERY_STAGE if opts.trainable_layers is None else opts.trainable_layers
    return replace(opts, epochs=opts.epochs or DEFAULT_EPOCHS, trainable_layers=layers,
                   backbone_weights=None if weights == "none" else weights)


def split_ids(split: str) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids) from a split folder (any spelling `video.data.split_layout` reads); a
    video in both lists is refused (its held-out AP would be measured on a training video)."""
    from .track_split import split_video_ids

    files = split_files(split, "--split", need_labels=False)
    if files.train is None or "validation" not in files.sets:
        raise UserError(f"{files.folder}: needs a train list and a validation list (train.json + validation.json, "
                        "or something-something-v2-train.json + -validation.json)")
    from vislearn.video.splits.io import refuse_shared_ids

    train_ids, val_ids = split_video_ids(split, ["train"]), split_video_ids(split, ["validation"])
    refuse_shared_ids(train_ids, files.train, val_ids, files.records("validation"))
    return train_ids, val_ids


def gather_items(opts: TrainOptions, log) -> tuple[list[VideoItem], list[VideoItem], dict]:
    boxes = open_boxes(opts.boxes)
    videos = list_videos(opts.videos)
    annotated = [v for v in boxes.video_ids()]
    if opts.split:
        train_ids, val_ids = split_ids(opts.split)
    else:
        usable = sorted((v for v in annotated if v in videos), key=lambda s: (len(s), s))
        rng = np.random.default_rng(opts.seed)
        order = [usable[i] for i in rng.permutation(len(usable))]
        n_val = 0
        if len(order) > 1 and opts.val_fraction > 0:  # at least one held-out and one training video
            n_val = min(max(1, round(opts.val_fraction * len(order))), len(order) - 1)
        val_ids, train_ids = sorted(order[:n_val], key=lambda s: (len(s), s)), sorted(order[n_val:], key=lambda s: (len(s), s))
    counts = {"no_boxes": 0, "no_video": 0, "empty": 0}

    def items(ids: list[str]) -> list[VideoItem]:
        out = []
        for vid in ids:
            if vid not in boxes:
                counts["no_boxes"] += 1
                continue
            if vid not in videos:
                counts["no_video"] += 1
                continue
            vb = boxes.get(vid)
            if len(vb.track) == 0:
                counts["empty"] += 1
                continue
            out.append(VideoItem(vid, videos[vid], vb))
        return out

    train_items, val_items = items(train_ids), items(val_ids)
    if opts.max_videos:
        train_items = train_items[:opts.max_videos]
        val_items = val_items[:max(1, opts.max_videos // 4)]
    if not train_items:
        raise UserError(f"{opts.boxes} + {opts.videos}: no training video has both boxes and a video file "
                        f"({counts['no_boxes']} without boxes, {counts['no_video']} without a video)")
    counts.update({"train_videos": len(train_items), "heldout_videos": len(val_items)})
    skipped = counts["no_boxes"] + counts["no_video"] + counts["empty"]
    if skipped:
        log(f"skipped {skipped} listed videos: {counts['no_boxes']} without boxes, {counts['no_video']} without a "
            f"video file, {counts['empty']} without any box")
    return train_items, val_items, counts


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj




def _started_here(config: Path) -> bool:
    """Whether `config` is the config.json of a train-detector run (one killed before its first epoch
    ended leaves it without last.pt): a folder of ours to start afresh in."""
    try:
        data = read_json(config)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"options", "spec", "data"} <= set(data)


RUN_FILES = ("last.pt", "best.pt", "config.json", "metrics.jsonl", "results.json")


def train(opts: TrainOptions, resume: bool = False, progress=None, log=print, given: set[str] | None = None) -> dict:
    """Train (or with `resume`, continue) the run in `opts.out`. `given`: the options set on the command
    line (a resumed run refuses those that differ from its own; None: those that differ from the
    defaults). Raises `Diverged` when the loss or the weights become non-finite. The run holds its
    folder's lock (`vislearn.common.outputs`): a second writer into it is refused in one line."""
    with session():  # the folder's claim and lock end with the run
        return _train(opts, resume, progress, log, given)


def _train(opts: TrainOptions, resume: bool, progress, log, given: set[str] | None) -> dict:
    check_options(opts)
    # the checks below run under the lock, so two runs started together cannot both pass them
    claim = claim_folder(opts.out, kind="video tracking train-detector", flag="--out", lock=True)
    out = claim.path
    last, best_path = out / "last.pt", out / "best.pt"
    if last.exists() and not resume:
        raise UserError(f"{out}: already holds a detector run (last.pt); pass --resume to continue it or choose another --out")
    held = [n for n in ("best.pt", "config.json", "metrics.jsonl", "results.json") if (out / n).exists()]
    if held and not last.exists() and not _started_here(out / "config.json"):
        raise UserError(f"{out}: holds {', '.join(held)} but no detector run to resume (no last.pt); "
                        "choose another --out (nothing there is replaced)")
    # never over an input; in a run to resume (or one started here and killed before its first epoch) the
    # files are the run's whatever their records say (a run from before manifests, a record lost to a full
    # disk); elsewhere a file of a run's name that vislearn did not write is refused
    claim.check(RUN_FILES, last.exists() or _started_here(out / "config.json"),
                inputs=[opts.boxes, opts.init, opts.backbone_weights, opts.ignore_boxes])
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)
    device = resolve_device(opts.device, key="--device")
    ckpt = read_checkpoint(last) if resume and last.exists() else None
    if ckpt is not None:
        # continue the run as it was started: its data, network and schedule options; only the
        # epoch count (to extend a run) and where it runs may change
        saved = TrainOptions(**{k: v for k, v in ckpt["options"].items() if k in TrainOptions.__dataclass_fields__})
        conflicts = resume_conflicts(opts, saved, given)
        if conflicts:
            raise UserError(f"{last}: --resume continues the run with its own options, and options given here "
                            f"differ from them: {'; '.join(conflicts)}; leave them out (or give the run's values), "
                            f"or start a new run with another --out")
        opts = replace(saved, out=opts.out, epochs=opts.epochs or saved.epochs, workers=opts.workers,
                       device=opts.device, amp=opts.amp)
        spec = DetectorSpec.from_dict(ckpt["spec"])
    else:
        opts = fresh_options(opts)
    train_items, val_items, counts = gather_items(opts, log)
    ignore = open_boxes(opts.ignore_boxes) if opts.ignore_boxes else None
    if ckpt is None:
        if opts.min_size is None and opts.arch in DEFAULT_WEIGHTS:  # MobileNetV2: frames at their own size
            with open_video(train_items[0].path) as reader:
                width, height = reader.size
            opts = replace(opts, min_size=min(width, height), max_size=opts.max_size or max(width, height))
        pretrained = bool(opts.backbone_weights or opts.init)
        spec = default_spec(opts.arch, min_size=opts.min_size, max_size=opts.max_size, frozen_bn=pretrained,
                            trainable_layers=opts.trainable_layers)
    model = build_detector(spec)
    loaded = {}
    if ckpt is None:
        if opts.backbone_weights:
            loaded["backbone"] = load_backbone_from_classifier(model, opts.backbone_weights, spec.arch)
            log(describe_backbone_load(loaded["backbone"], opts.backbone_weights))
        if opts.init:
            loaded["init"] = load_detector_init(model, opts.init)
            log(f"detector weights: {loaded['init']['loaded']}/{loaded['init']['of']} tensors from {opts.init}")
    model.to(device)
    train_set = FrameSamples(train_items, opts.frames_per_video, train=True, seed=opts.seed)
    val_set = FrameSamples(val_items, opts.eval_frames_per_video, train=False, seed=opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=max(1, opts.batch_size // max(1, opts.frames_per_video)),
                                         shuffle=True, num_workers=opts.workers, collate_fn=collate, generator=gen,
                                         persistent_workers=False)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=1, shuffle=False, num_workers=opts.workers,
                                             collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
    total_iters = opts.epochs * len(loader)
    lr_factor = warmup_cosine(total_iters, min(opts.warmup_iters, total_iters // 2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scaler = torch.amp.GradScaler("cuda") if opts.amp and device.type == "cuda" else None
    start_epoch, best, metrics = 0, {"epoch": -1, "map50": -1.0}, []
    if ckpt is not None:
        load_state(model, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):  # --epochs may have grown
            group["lr"] = base * lr_factor(scheduler.last_epoch)
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        gen.set_state(ckpt["loader_rng"])
        start_epoch, best, metrics = ckpt["epoch"] + 1, ckpt["best"], ckpt.get("metrics", [])
        log(f"resumed {last} after epoch {ckpt['epoch']}")
    out.mkdir(parents=True, exist_ok=True)
    spec_dict = asdict(spec) | {"classes": list(spec.classes)}
    if ckpt is None:  # a resumed run keeps the config it started with
        write_json(out / "config.json", _json_safe({
            "options": asdict(opts), "spec": spec_dict, "data": counts,
            "weights_loaded": {k: {n: v[n] for n in ("loaded", "of", "fpn_loaded", "fpn_of", "note") if n in v}
                               for k, v in loaded.items()}}), indent=2)
    write_jsonl(out / "metrics.jsonl", metrics)
    log(f"data: {len(train_items)} training videos ({opts.frames_per_video} frames each per epoch), "
        f"{len(val_items)} held-out videos; {spec.arch} {spec.min_size}-{spec.max_size}px on {device}")
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.perf_counter()
        train_set.set_epoch(epoch)
        try:
            stats = train_one_epoch(model, loader, optimizer, scheduler, device, epoch, scaler, progress, opts.clip_grad)
        except FloatingPointError as e:
            raise Diverged(f"training diverged: {e}; stopped, nothing of this epoch saved; the last good "
                           f"checkpoint is {last if last.exists() else '(none yet)'} (lower --lr?)") from None
        bad = _non_finite(model)
        if bad:  # e.g. the last step of the epoch: its loss was finite, the update was not
            raise Diverged(f"training diverged: epoch {epoch}: the weights became non-finite ({len(bad)} tensors, "
                           f"e.g. {bad[0]}); stopped, nothing of this epoch saved; the last good checkpoint is "
                           f"{last if last.exists() else '(none yet)'} (lower --lr?)")
        row = {"epoch": epoch, **stats, "time_s": round(time.perf_counter() - t0, 2)}
        evaluated = bool(val_items) and (epoch == opts.epochs - 1 or (opts.eval_every and (epoch + 1) % opts.eval_every == 0))
        if evaluated:
            start = time.perf_counter()
            row.update(ap_row(evaluate_ap(model, val_loader, device, spec.classes, progress, ignore)))
            row["eval_time_s"] = round(time.perf_counter() - start, 2)
        metrics.append(row)
        score = row.get("map50", math.nan)
        score = -1.0 if math.isnan(score) else score  # NaN: no held-out ground truth
        # no held-out videos: the latest is "best"; an epoch without evaluation is never "best"
        is_best = (score >= best["map50"] if evaluated else False) if val_items else True
        if is_best:
            best = {"epoch": epoch, "map50": score}
        state = {"kind": CHECKPOINT_KIND, "spec": spec_dict, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "lr_scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                 "epoch": epoch, "rng": rng_state(), "loader_rng": gen.get_state(), "best": best, "metrics": metrics,
                 "options": asdict(opts)}
        if is_best:
            save_checkpoint({k: state[k] for k in ("kind", "spec", "model", "epoch", "metrics")}, best_path)
        save_checkpoint(state, last)
        write_jsonl(out / "metrics.jsonl", metrics)
        ap_text = (f", held-out mAP@0.5 {row['map50']:.3f} mAP@0.75 {row['map75']:.3f} mAP@[.5:.95] {row['map']:.3f}"
                   if "map50" in row and row["map50"] == row["map50"] else "")
        log(f"epoch {epoch}: loss {stats.get('loss', float('nan')):.4f}{ap_text} ({row['time_s']:.1f}s)")
    final = metrics[-1] if metrics else {}
    results = {"epochs": opts.epochs, "best_epoch": best["epoch"], "best_map50": best["map50"],
               "final": final, "data": counts, "spec": spec_dict,
               "checkpoint": str(best_path), "last": str(last)}
    write_json(out / "results.json", _json_safe(results), indent=2)
    return results


def tqdm_progress(quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    def progress(it, desc):
        return tqdm(it, desc=desc, unit="batch", file=sys.stderr, leave=False)
    return progress
