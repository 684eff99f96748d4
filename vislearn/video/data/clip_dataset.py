"""The torch Dataset: SSv2 records + Something-Else boxes (+ videos) -> the batch dict every model reads.

One item:
  boxes    float [T, N, 4]  (cx, cy, w, h) normalised to the model's input view, zeros where masked
  box_ids  long  [N]        0 empty, 1 hand, 2 object (see `video.data.slots`)
  box_mask bool  [T, N]
  frames   float [3, T', H, W]  ImageNet-normalised pixels, only with load_frames=True
  rgb_boxes, rgb_box_mask  [T', N, 4], [T', N]: the same slots on the RGB frames, only with
           rgb_boxes=True (region models such as STRG pool the pixels' feature map at them)
  label    long  []         -1 when the records carry no labels (test set)
  video_id str
  view     long  []         only for multi-view evaluation (num_clips x num_crops > 1)
`collate` stacks items into [B, ...] and keeps `video_id` a list of str. A DataLoader asks for whole
batches (`__getitems__`): coordinate-only datasets on a box store make them at once
(`video.data.coord_batch`, equal to the stacked items), everything else item by item.

Policies (real data does not line up; each is tested):
  - Construction checks only cheap things and never opens a video: a record without a known
    class (labels given), without boxes (when boxes are required) or, with load_frames, without a
    video file/folder under video_root is skipped. `dataset.report` counts records, kept and each
    reason; `dataset.skipped` lists (video id, reason); one log line sums it up. `strict=True`
    raises UserError on the first such record instead.
  - A video that exists but cannot be decoded raises UserError naming the file when the item is
    loaded (DataLoader workers propagate it): skipping it silently would bias evaluation.
  - Box frames: `num_box_frames` TSN segments over the ANNOTATED range (first..last annotated
    frame), so every sampled frame normally has a record. `rgb_boxes` are taken on the RGB frame
    indices instead (sampled over the DECODED length), so frames past the annotations (151201: 33
    decoded, 23 annotated) are masked there.
  - Boxes partly outside the frame/view are clipped; boxes with no area left, and slots with no
    box on a frame, are masked with zero boxes.
  - Frame size (needed to crop/normalise boxes) comes from the decoded frames when frames are
    loaded. A coordinate-only dataset (load_frames=False) NEVER opens a video or an image: the
    size comes from `frame_sizes` (mapping id -> (w, h), or a callable id -> (w, h) or None), else
    `default_frame_size`, else the box extent: width = ceil(max x2) of the video's boxes,
    height = max(240 (SSv2 frames are 240 px high), ceil(max y2)). The box-extent
    fallback under-estimates the width when no box reaches the right edge (a warning says so once);
    give real sizes when coordinate and RGB models must see the same crop.
  - Geometry: training uses `crop` ('full' by default: the whole frame, every box in view;
    'multiscale' is the official crop), evaluation the centre crop, or the whole frame with
    crop='full' (which normalises boxes by the whole frame). No flip unless a
    `transforms.HorizontalFlip` (label swap by class name) is passed. Time is never reversed.
  - Randomness: each item's draws are a pure function of (seed, epoch, crc32(video id)), with
    independent streams for box frames, RGB frames, crop and flip (`video.data.draws`: counter-based,
    so a batch draws for all its items at once and gets the very numbers each item would draw
    alone). Results are identical for
    any number of DataLoader workers, resumable by `set_epoch`, and a coordinate-only and an RGB
    dataset over the same records pick the same box frames and crop. (The id, not the position, so
    that skipping a record elsewhere does not shift everyone else's randomness; a record listed
    twice gets the same draw twice per epoch.) With persistent_workers=True the workers keep
    their copy of the epoch: call `set_epoch` before creating the DataLoader's iterator, or do not
    use persistent workers.
"""
from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from vislearn.common.errors import UserError
from .annotations import BoxSource, VideoBoxes
from .clip_defaults import CLIP_DEFAULTS as DEFAULTS
from .coord_batch import CoordBatcher
from .draws import ItemRandom, item_keys
from .frame_size import SSV2_FRAME_HEIGHT, box_extent_size
from .sampling import FrameSampler, SegmentSampler, make_sampler
from .slots import fill_slots
from .ssv2 import Record
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, HorizontalFlip, NCrop, View, boxes_to_view,
                         frames_to_view, make_view_transform, normalize)
from vislearn.common.video import VideoReader, list_videos, open_video

log = logging.getLogger(__name__)

FrameSizes = Mapping[str, tuple[int, int]] | Callable[[str], tuple[int, int] | None]


class ClipDataset(torch.utils.data.Dataset):
    """Items for STIN (boxes only), I3D (frames only) or fusion (both). See the module docstring.

    records/labels: from `video.data.ssv2` (labels None: test set, label -1). boxes: any BoxSource
    (JSON `AnnotationFile` or the memory-mapped `BoxStore`). video_root: `<id>.webm|.mp4|<id>/`.
    num_box_frames (T, segment-sampled), num_slots (N); num_rgb_frames (T') with rgb_sampler
    'segment' or 'strided' (frames 2 apart: 16 of them is the official clip), or any
    `sampling.FrameSampler`. Boxes are required when given: a record without boxes is skipped.
    input_size: side of the square model input (112 on CPU, 224 as in the paper); crop:
    'full' | 'multiscale' | 'center' (training; evaluation uses the centre crop, the whole frame
    with 'full', or, with num_crops > 1, `transforms.NCrop`). The sampling defaults are
    `clip_defaults.CLIP_DEFAULTS`, the values a run config (`video.actions.config.TrainConfig`) starts
    from: 8 box frames, 4 slots, 8 segment-sampled RGB frames, 112 px, the whole frame.
    num_clips x num_crops views per record at evaluation
    (item index = record * views + clip * num_crops + crop). video_opener(path) returns
    a `video.VideoReader` (default `video.open_video`). video_paths: id -> video file or frame
    folder, used instead of listing video_root (inference on paths a user names; ids missing
    from it are skipped as no_video).
    """

    def __init__(
        self,
        records: Sequence[Record],
        labels: Mapping[str, int] | None,
        boxes: BoxSource | None = None,
        video_root: str | os.PathLike | None = None,
        *,
        video_paths: Mapping[str, str | os.PathLike] | None = None,
        num_box_frames: int = DEFAULTS.num_box_frames,
        num_slots: int = DEFAULTS.num_slots,
        official_slots: bool = DEFAULTS.official_slots,
        load_frames: bool = False,
        num_rgb_frames: int = DEFAULTS.num_rgb_frames,
        rgb_sampler: str | FrameSampler = DEFAULTS.rgb_sampler,
        rgb_boxes: bool = False,
        train: bool = True,
        input_size: int = DEFAULTS.input_size,
        crop: str = DEFAULTS.crop,
        num_clips: int = 1,
        num_crops: int = 1,
        flip: HorizontalFlip | None = None,
        frame_sizes: FrameSizes | None = None,
        default_frame_size: tuple[int, int] | None = None,
        strict: bool = False,
        video_opener: Callable[..., VideoReader] = open_video,
        seed: int = 0,
        source: str = "<records>",
    ):
        if boxes is None and not load_frames:
            raise ValueError("ClipDataset needs boxes, frames (load_frames=True), or both")
        if load_frames and video_root is None and video_paths is None:
            raise ValueError("load_frames=True needs a video_root (or video_paths)")
        if train and num_clips * num_crops > 1:
            raise ValueError("multi-view sampling (num_clips, num_crops) is for evaluation (train=False)")
        self.labels = dict(labels) if labels is not None else None
        self.boxes = boxes
        self.video_root = video_root
        self._given_paths = None if video_paths is None else {str(k): v for k, v in video_paths.items()}
        self.num_slots = num_slots
        self.official_slots = official_slots
        self.load_frames = load_frames
        if rgb_boxes and not (load_frames and boxes is not None):
            raise ValueError("rgb_boxes=True needs boxes and load_frames=True (boxes on the RGB frames)")
        self.rgb_boxes = rgb_boxes
        self.train = train
        self.input_size = input_size
        self.num_clips, self.num_crops = num_clips, num_crops
        self.flip = flip
        self.frame_sizes = frame_sizes
        self.default_frame_size = default_frame_size
        self.video_opener = video_opener
        self.seed = int(seed)
        self.epoch = 0
        self.box_sampler = SegmentSampler(num_box_frames)
        self.rgb_sampler = rgb_sampler if isinstance(rgb_sampler, FrameSampler) else make_sampler(rgb_sampler, num_rgb_frames)
        self.view_transform = make_view_transform(train, input_size, crop)
        self.ncrop = NCrop(input_size, num_crops) if num_crops > 1 else None
        self.items, self.labels_of, self.video_paths = self._select(records, strict, source)
        self._batcher = CoordBatcher(self) if CoordBatcher.covers(self) and self.items else None
        if not load_frames and boxes is not None and frame_sizes is None and default_frame_size is None:
            log.warning("ClipDataset: no frame_sizes/default_frame_size given; frame width inferred from "
                        "the box extent (max x2), height %d", SSV2_FRAME_HEIGHT)

    # ---- construction -------------------------------------------------------------------
    def _select(self, records, strict, source):
        counts: Counter = Counter()
        skipped: list[tuple[str, str]] = []
        if not self.load_frames:
            videos = {}
        elif self._given_paths is not None:
            videos = self._given_paths
        else:
            videos = list_videos(self.video_root)
        items, labels_of, paths = [], [], []
        for rec in records:
            reason = None
            label = -1
            if self.labels is not None:
                name = rec.class_name
                if name is None or name not in self.labels:
                    reason = "no_label"
                else:
                    label = self.labels[name]
            if reason is None and self.boxes is not None and rec.id not in self.boxes:
                reason = "no_boxes"
            if reason is None and self.load_frames and rec.id not in videos:
                reason = "no_video"
            if reason is not None:
                if strict:
                    what = {"no_label": f"template {rec.template!r} is not in the labels",
                            "no_boxes": "no boxes in the box annotations",
                            "no_video": f"no {rec.id}.webm, {rec.id}.mp4 or {rec.id}/ under {self.video_root}"
                            if self._given_paths is None else "no path given for this video"}[reason]
                    raise UserError(f"{source}: video {rec.id}: {what}")
                counts[reason] += 1
                skipped.append((rec.id, reason))
                continue
            items.append(rec)
            labels_of.append(label)
            paths.append(videos.get(rec.id))
        self.report = {"records": len(records), "kept": len(items), "no_label": counts["no_label"],
                       "no_boxes": counts["no_boxes"], "no_video": counts["no_video"]}
        self.skipped = skipped
        if skipped:
            log.warning("ClipDataset %s: kept %d of %d records (skipped: %d without a known label, %d without boxes, "
                        "%d without a video)", source, len(items), len(records), counts["no_label"],
                        counts["no_boxes"], counts["no_video"])
        else:
            log.info("ClipDataset %s: %d records", source, len(items))
        return items, labels_of, paths

    # ---- torch Dataset ------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of training items (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.items) * self.num_views

    def rngs(self, video_id: str) -> list[ItemRandom] | list[None]:
        """Draws for (box frames, RGB frames, crop, flip) of one item; None in evaluation."""
        if not self.train:
            return [None] * 4
        key = item_keys(self.seed, self.epoch, [zlib.crc32(str(video_id).encode())])[0]
        return [ItemRandom(key, stream) for stream in range(4)]

    def __getitems__(self, indices: Sequence[int]) -> dict:
        """A whole batch (what `collate` returns for the same items), made at once by
        `coord_batch.CoordBatcher` where it covers the dataset. The DataLoader calls this with each
        batch's indices; `collate` passes the result through."""
        if self._batcher is None:
            return Batch(collate([self[i] for i in indices]))
        for i in indices:
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} items")
        return Batch(self._batcher(indices))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item, view_k = divmod(index, self.num_views)
        clip_k, crop_k = divmod(view_k, self.num_crops)
        rec = self.items[item]
        label = self.labels_of[item]
        box_rng, rgb_rng, view_rng, flip_rng = self.rngs(rec.id)
        vb = self.boxes.get(rec.id) if self.boxes is not None and rec.id in self.boxes else None

        frames = rgb_idx = None
        if self.load_frames:
            with self.video_opener(self.video_paths[item]) as reader:
                rgb_idx = self.pick_frames(self.rgb_sampler, len(reader), rgb_rng, clip_k)
                frames = reader.get_frames(rgb_idx)
            frame_size = (frames.shape[2], frames.shape[1])
        else:
            frame_size = self.frame_size(rec.id, vb)

        view = self.view_for(frame_size, view_rng, crop_k)
        if self.flip is not None and self.train:
            view, label = self.flip(view, label, flip_rng)

        out = self.sample_boxes(vb, box_rng, clip_k, view)
        if frames is not None:
            out["frames"] = normalize(frames_to_view(frames, view), IMAGENET_MEAN, IMAGENET_STD)
        if self.rgb_boxes:
            on_rgb = self.boxes_on(vb, rgb_idx, view)
            out["rgb_boxes"], out["rgb_box_mask"] = on_rgb["boxes"], on_rgb["box_mask"]
        out["label"] = torch.tensor(label, dtype=torch.long)
        out["video_id"] = rec.id
        if self.num_views > 1:
            out["view"] = torch.tensor(view_k, dtype=torch.long)
        return out

    # ---- pieces of an item (public: actions.feature_cache builds cached items from them) ----
    def pick_frames(self, sampler: FrameSampler, num_frames: int, rng, clip_k: int) -> np.ndarray:
        """Frame indices of clip `clip_k`: a random draw with `rng`, else the evaluation clip(s)."""
        if rng is not None:
            return sampler.sample(num_frames, rng)
        if self.num_clips == 1:
            return sampler.centre(num_frames)
        return sampler.views(num_frames, self.num_clips)[clip_k]

    def view_for(self, frame_size: tuple[int, int], rng, crop_k: int) -> View:
        """The crop/resize of a frame of `frame_size`: random with `rng` in training, else crop `crop_k`."""
        if self.ncrop is not None:
            return self.ncrop.views(frame_size)[crop_k]
        return self.view_transform(frame_size, rng)

    def sample_boxes(self, vb: VideoBoxes | None, rng, clip_k: int, view: View) -> dict:
        """The box tensors of an item: box frames picked over the annotated span, then `boxes_on`."""
        if vb is not None and len(vb.frame_index):
            first, last = int(vb.frame_index[0]), int(vb.frame_index[-1])
            frames = first + self.pick_frames(self.box_sampler, last - first + 1, rng, clip_k)
        else:
            frames = np.zeros(self.box_sampler.num_out, dtype=np.int64)  # no annotated frame: everything masked
        return self.boxes_on(vb, frames, view)

    def boxes_on(self, vb: VideoBoxes | None, frames: np.ndarray, view: View) -> dict:
        """Slot-filled boxes of decoded frames `frames`, normalised to `view` and masked."""
        if vb is None:
            return {"boxes": torch.zeros(len(frames), self.num_slots, 4),
                    "box_ids": torch.zeros(self.num_slots, dtype=torch.long),
                    "box_mask": torch.zeros(len(frames), self.num_slots, dtype=torch.bool)}
        slots = fill_slots(vb, frames, self.num_slots, self.official_slots)
        norm, valid = boxes_to_view(slots.boxes, view)
        mask = slots.box_mask if self.official_slots else slots.box_mask & valid
        norm[~mask] = 0.0
        return {"boxes": torch.from_numpy(norm), "box_ids": torch.from_numpy(slots.box_ids),
                "box_mask": torch.from_numpy(mask)}

    def frame_size(self, video_id: str, vb: VideoBoxes | None = None) -> tuple[int, int]:
        """(w, h) used to normalise boxes without decoding (see the module docstring for the order)."""
        fs = self.frame_sizes
        if fs is not None:
            size = fs(video_id) if callable(fs) else fs.get(video_id)
            if size is not None:
                return int(size[0]), int(size[1])
        if self.default_frame_size is not None:
            return int(self.default_frame_size[0]), int(self.default_frame_size[1])
        return box_extent_size(vb)


class Batch(dict):
    """A batch already collated (by `ClipDataset.__getitems__`): `collate` returns it as it is."""


def collate(batch: Sequence[dict]) -> dict:
    """Stack items into [B, ...]; `video_id` stays a list of str."""
    if isinstance(batch, Batch):
        return dict(batch)
    if not batch:
        raise ValueError("empty batch")
    out = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            out[key] = torch.tensor(values, dtype=torch.long)
        else:
            out[key] = list(values)
    return out
