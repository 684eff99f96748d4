"""From a run config to datasets and loaders: split files + boxes + videos -> ClipDataset -> DataLoader.

Model selection uses a held-out part of train.json (`holdout_fraction`, stratified by class, fixed
by the seed), never the evaluation side of the split: the official code chose its checkpoint on
the set it reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vislearn.video.data.box_store import open_boxes
from vislearn.video.data.clip_dataset import ClipDataset, collate
from vislearn.common.errors import UserError
from vislearn.video.data.split_layout import split_files
from vislearn.video.data.ssv2 import Record, class_names, load_labels, load_records

from .config import TrainConfig
from .distributed import DistInfo
from .feature_cache import CachedClips, FrameFeatureCache, default_cache_root, frozen_frame_trunk
from .samplers import GlobalBatchSampler, ShardSampler


def holdout_split(records: list[Record], labels: dict[str, int], fraction: float, seed: int
                  ) -> tuple[list[Record], list[Record]]:
    """Stratified: about `fraction` of each class's videos (at least one when a class has >= 2)."""
    if fraction <= 0:
        return list(records), []
    rng = np.random.default_rng([seed, 7919])
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(labels[r.class_name], []).append(i)
    held: set[int] = set()
    for c in sorted(by_class):
        idx = by_class[c]
        if len(idx) < 2:
            continue
        n = max(1, int(round(fraction * len(idx))))
        held.update(rng.choice(idx, size=n, replace=False).tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def holdout_note(fraction: float, held: int, total: int) -> str | None:
    """A line for the log when the held-out share differs noticeably from `holdout_fraction` (by more
    than a quarter of it and at least a point): `holdout_split` holds out at least one video of every
    class with two or more, and none of a class with one, so on a small set the share is not the fraction."""
    if fraction <= 0 or total == 0:
        return None
    share = held / total
    if abs(share - fraction) <= max(0.01, fraction / 4):
        return None
    why = ("each class with two or more videos keeps at least one held-out video" if share > fraction else
           "a class with a single video holds none out, and each class's share is rounded")
    return (f"held out {share:.0%} of the training list ({held} of {total} videos; asked {fraction:.0%}, "
            f"holdout_fraction={fraction:g}): {why}")


@dataclass
class Data:
    class_names: list[str]
    labels: dict[str, int]
    train: ClipDataset | None
    holdout: ClipDataset | None
    evaluation: ClipDataset | None
    report: dict


def model_inputs(model: torch.nn.Module) -> dict[str, bool]:
    """What a model reads, as the keyword arguments of `make_dataset` / `build_data`."""
    return {"needs_boxes": bool(getattr(model, "needs_boxes", True)),
            "needs_frames": bool(getattr(model, "needs_frames", False)),
            "needs_rgb_boxes": bool(getattr(model, "needs_rgb_boxes", False))}


def make_dataset(cfg: TrainConfig, records: list[Record], labels: dict[str, int], *, needs_boxes: bool,
                 needs_frames: bool, train: bool, needs_rgb_boxes: bool = False, boxes=None,
                 views: tuple[int, int] = (1, 1), source: str = "", seed: int | None = None,
                 video_paths=None, video_opener=None) -> ClipDataset:
    """`video_paths` (id -> file or frame folder) replaces `cfg.videos` when given (inference);
    `video_opener` (path -> VideoReader, default `open_video`) lets inference hand over frames it decoded."""
    if needs_boxes and boxes is None:
        if not cfg.boxes:
            raise UserError("this model reads boxes: set `boxes` to a Something-Else JSON or box store")
        boxes = open_boxes(cfg.boxes)
    if needs_frames and video_paths is None and not cfg.videos:
        raise UserError("this model reads pixels: set `videos` to the folder of videos or frame folders")
    if needs_frames and video_paths is None and not Path(cfg.videos).is_dir():
        raise UserError(f"{cfg.videos}: video folder not found")
    return ClipDataset(
        records, labels, boxes if needs_boxes else None, cfg.videos if needs_frames and video_paths is None else None,
        video_paths=video_paths if needs_frames else None,
        num_box_frames=cfg.num_box_frames, num_slots=cfg.num_slots, official_slots=cfg.official_slots,
        load_frames=needs_frames, rgb_boxes=needs_rgb_boxes, num_rgb_frames=cfg.num_rgb_frames,
        rgb_sampler=cfg.rgb_sampler,
        train=train, input_size=cfg.input_size, crop=cfg.crop, num_clips=views[0], num_crops=views[1],
        default_frame_size=tuple(cfg.frame_size) if cfg.frame_size else None,
        seed=cfg.seed if seed is None else seed, source=source,
        **({"video_opener": video_opener} if video_opener is not None else {}))


ALSO = "#also"  # the id suffix of a training video's second copy, read from `train_boxes_also`


class BoxesAlso:
    """Two box sources of the same videos as one (`train_boxes_also`): `id` reads `first`, `id + ALSO` reads
    `second`. A training set of both copies of each record then sees every video with either set of boxes."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def _source(self, video_id: str):
        vid = str(video_id)
        return (self.second, vid[: -len(ALSO)]) if vid.endswith(ALSO) else (self.first, vid)

    def __contains__(self, video_id) -> bool:
        source, vid = self._source(video_id)
        return vid in source

    def get(self, video_id):
        source, vid = self._source(video_id)
        return source.get(vid)


def with_boxes_also(cfg: TrainConfig, records: list[Record], boxes, needs_frames: bool):
    """(records, boxes) of the training set: with `cfg.train_boxes_also`, every record twice, its copy reading
    the second box source (box-only models: the copy has no video of its own)."""
    if not cfg.train_boxes_also or boxes is None:
        return records, boxes
    if needs_frames:
        raise UserError(f"train_boxes_also={cfg.train_boxes_also}: only for box-only models ({cfg.model} reads "
                        f"pixels)")
    also = open_boxes(cfg.train_boxes_also)
    copies = [Record(r.id + ALSO, r.template, r.label, list(r.placeholders)) for r in records]
    return records + copies, BoxesAlso(boxes, also)


def check_disjoint(files, train_records: list[Record], eval_records: list[Record] | None, eval_path) -> None:
    """Refuse (one line, naming a few ids and the count) a split whose training list shares videos with
    its validation list or with the evaluated list: what `splits validate` reports as disjoint-ids, caught
    here where every trainer reads the split (also by --dry-run)."""
    from vislearn.common.jsonio import read_json
    from vislearn.video.splits.io import refuse_shared_ids

    train_ids = [r.id for r in train_records]
    if eval_records is not None and eval_path != files.train:
        refuse_shared_ids(train_ids, files.train, [r.id for r in eval_records], eval_path)
    validation = files.sets.get("validation")
    if validation is not None and validation != eval_path:
        data = read_json(validation)
        ids = [str(r["id"]) for r in data if isinstance(r, dict) and "id" in r] if isinstance(data, list) else []
        refuse_shared_ids(train_ids, files.train, ids, validation)


def build_data(cfg: TrainConfig, needs_boxes: bool, needs_frames: bool, with_train: bool = True,
               needs_rgb_boxes: bool = False, log=print) -> Data:
    """The datasets of a run. With `with_train`: refuses a training list that shares videos with the
    validation or evaluated list, and logs when the held-out share differs from holdout_fraction."""
    files = split_files(cfg.split)
    labels = load_labels(files.labels)
    names = class_names(labels)
    boxes = open_boxes(cfg.boxes) if needs_boxes and cfg.boxes else None
    kw = dict(needs_boxes=needs_boxes, needs_frames=needs_frames, needs_rgb_boxes=needs_rgb_boxes, boxes=boxes)
    report: dict = {}
    train = holdout = None
    eval_path = files.records(cfg.eval_set) if cfg.eval_set else None
    eval_recs = load_records(eval_path, labels) if eval_path is not None else None
    if with_train:
        records = load_records(files.records("train"), labels)
        check_disjoint(files, records, eval_recs, eval_path)
        if cfg.max_videos:
            records = records[: cfg.max_videos]
        train_recs, held_recs = holdout_split(records, labels, cfg.holdout_fraction, cfg.seed)
        note = holdout_note(cfg.holdout_fraction, len(held_recs), len(records))
        if note:
            log(note)
        both, both_boxes = with_boxes_also(cfg, train_recs, boxes, needs_frames)
        train = make_dataset(cfg, both, labels, train=True, source=str(files.train), **{**kw, "boxes": both_boxes})
        if held_recs:
            holdout = make_dataset(cfg, held_recs, labels, train=False, source=f"{files.train} (held out)", **kw)
        report["train"] = train.report
        report["holdout"] = holdout.report if holdout else None
        if len(train) == 0:
            raise UserError(f"{files.train}: no usable training videos ({train.report})")
    evaluation = None
    if eval_recs is not None:
        if not eval_recs:  # found now, not as a crash after the last epoch
            raise UserError(f"{eval_path}: no records to evaluate (eval_set={cfg.eval_set}); "
                            f"fill it, or set eval_set= to skip the final evaluation")
        evaluation = make_dataset(cfg, eval_recs, labels, train=False, views=tuple(cfg.eval_views),
                                  source=str(eval_path), **kw)
        if len(evaluation) == 0:
            raise UserError(f"{eval_path}: none of its {len(eval_recs)} videos can be used ({evaluation.report})")
        report["evaluation"] = evaluation.report
    return Data(names, labels, train, holdout, evaluation, report)


def use_feature_cache(cfg: TrainConfig, model: torch.nn.Module, data: Data, dist: DistInfo, log=print) -> Data:
    """With `cfg.feature_cache`, serve the frozen per-frame part of the model's trunk from the on-disk
    cache (filled first where entries are missing) instead of decoding pixels: see `video.actions.feature_cache`.
    Multi-view evaluation sets keep reading pixels. Returns `data` unchanged when there is nothing to cache."""
    trunk = _cacheable_trunk(cfg, model, log)
    if trunk is None:
        return data
    served = {name: serve_from_cache(cfg, trunk, getattr(data, name), data.labels, dist, name, log)
              for name in ("train", "holdout", "evaluation")}
    if dist.distributed:
        torch.distributed.barrier()  # the main process filled the cache
    return Data(data.class_names, data.labels, served["train"], served["holdout"], served["evaluation"], data.report)


def _cacheable_trunk(cfg: TrainConfig, model: torch.nn.Module, log) -> torch.nn.Module | None:
    if not cfg.feature_cache:
        return None
    trunk = frozen_frame_trunk(model)
    if trunk is None:
        log(f"feature_cache: {cfg.model} has no frozen per-frame trunk part (frozen_blocks > 0); reading pixels")
    return trunk


def serve_from_cache(cfg: TrainConfig, trunk: torch.nn.Module, ds: ClipDataset | None, labels: dict[str, int],
                     dist: DistInfo, name: str, log=print) -> ClipDataset | CachedClips | None:
    """`ds` with its frozen frame features read from the cache (filled first by the main process), or
    `ds` itself when it has several views per video (those keep reading pixels)."""
    if ds is None or ds.num_views != 1:
        return ds
    root = default_cache_root() if cfg.feature_cache == "auto" else Path(cfg.feature_cache)
    reference = make_dataset(cfg, ds.items, labels, needs_boxes=False, needs_frames=True, train=False,
                             video_paths={r.id: p for r, p in zip(ds.items, ds.video_paths)})
    cache = FrameFeatureCache(root, trunk, reference)
    if dist.is_main:
        computed = cache.fill(trunk, reference, dist.device, cfg.batch_size, cfg.workers)
        if computed:
            log(f"feature_cache: computed {computed} of {len(reference)} {name} videos into {cache.folder}")
    return CachedClips(ds, reference, cache)


def eval_dataset_with_cache(cfg: TrainConfig, model: torch.nn.Module, ds: ClipDataset, labels: dict[str, int],
                            dist: DistInfo, name: str, log=print) -> ClipDataset | CachedClips:
    """One evaluation-side dataset served from the feature cache as training serves its own (few-shot
    features, for one): the same numbers as from pixels, without decoding and the frozen blocks."""
    trunk = _cacheable_trunk(cfg, model, log)
    return ds if trunk is None else serve_from_cache(cfg, trunk, ds, labels, dist, name, log)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and crop; more threads per worker only fight for cores


def train_loader(ds: ClipDataset, cfg: TrainConfig, dist: DistInfo) -> DataLoader:
    sampler = GlobalBatchSampler(len(ds), cfg.batch_size, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    return DataLoader(ds, batch_sampler=sampler, num_workers=cfg.workers, collate_fn=collate,
                      worker_init_fn=_worker_init, pin_memory=dist.device.type == "cuda")


def eval_loader(ds: ClipDataset, cfg: TrainConfig, dist: DistInfo, batch_size: int | None = None) -> DataLoader:
    per_rank = max(1, (batch_size or cfg.batch_size) // dist.world_size)
    return DataLoader(ds, batch_size=per_rank, sampler=ShardSampler(len(ds), dist.rank, dist.world_size),
                      num_workers=cfg.workers, collate_fn=collate, worker_init_fn=_worker_init,
                      pin_memory=dist.device.type == "cuda")
