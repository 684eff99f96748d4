"""Per-frame detections in the Something-Else JSON layout: reading, validation, writing.

A detections file is a Something-Else box file whose labels carry a detector `score` and whose
`standard_category` (the track id) is still empty:

    {"<video id>": [{"name": "<id>/0001.jpg", "labels": [
        {"box2d": {"x1":..,"y1":..,"x2":..,"y2":..}, "category": "hand" | "object",
         "standard_category": "", "gt_annotation": "", "score": 0.93}, ...],
      "nr_instances": 2, "gt_placeholders": []}, ...]}

`detect` writes one record for every decoded frame (frames without detections have
`labels: []`), so the tracker knows how long each video is.

Reading rules (documented handling of bad input):
- class: `category` "hand" or "object" (any case). A box file with nouns (`category` "cup") is also
  accepted: its class comes from `standard_category` ("hand" -> hand, "0000"... -> object), so
  ground truth can be fed to the tracker. Anything else is an error ("unknown class").
- `score` missing -> 1.0; a score that is not a finite number in [0, 1] is an error.
- a NaN/inf coordinate is an error; an inverted box (x2 < x1 or y2 < y1) is an error (a detector
  never writes one: it usually means (x, y, w, h) was written as (x1, y1, x2, y2)).
  Zero-width or zero-height boxes are kept here and ignored by the tracker.
- a frame listed twice is an error; frames without a record count as frames without detections.
- a video with an empty record list is a video of zero frames (it tracks to an empty list).
Every error is a `UserError` naming the file, the video, the frame and the label.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from vislearn.video.data.annotations import HAND, VideoBoxes, finite_number, frame_name, record_box, record_frame
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json

CLASSES = ("hand", "object")  # detector class k+1 (torchvision reserves 0 for background)
HAND_CLASS, OBJECT_CLASS = 0, 1


def class_of(category: object, track_id: object = "") -> int | None:
    """Class index (0 hand, 1 object) of a label, or None when it names neither."""
    cat = str(category).strip().lower() if category is not None else ""
    if cat in CLASSES:
        return CLASSES.index(cat)
    tid = str(track_id).strip() if track_id is not None else ""
    if tid == HAND:
        return HAND_CLASS
    if tid.isdigit():
        return OBJECT_CLASS
    return None


@dataclass
class VideoDetections:
    """One video's detections as arrays, sorted by frame. Frame f is decoded frame f (0-based)."""

    video_id: str
    num_frames: int
    frame: np.ndarray  # int32 [M]
    xyxy: np.ndarray  # float32 [M, 4] pixels
    score: np.ndarray  # float32 [M]
    label: np.ndarray  # int64 [M]: 0 hand, 1 object

    def __post_init__(self) -> None:
        order = np.argsort(self.frame, kind="stable")
        self.frame = np.asarray(self.frame, dtype=np.int32)[order]
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)[order]
        self.score = np.asarray(self.score, dtype=np.float32)[order]
        self.label = np.asarray(self.label, dtype=np.int64)[order]
        if len(self.frame) and int(self.frame[-1]) >= self.num_frames:
            self.num_frames = int(self.frame[-1]) + 1

    def __len__(self) -> int:
        return len(self.frame)

    def frames(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(frame, xyxy [k,4], score [k], label [k]) for every frame 0..num_frames-1, empty ones included."""
        bounds = np.searchsorted(self.frame, np.arange(self.num_frames + 1))
        for f in range(self.num_frames):
            s, e = bounds[f], bounds[f + 1]
            yield f, self.xyxy[s:e], self.score[s:e], self.label[s:e]

    @classmethod
    def empty(cls, video_id: str, num_frames: int) -> "VideoDetections":
        return cls(video_id, num_frames, np.zeros(0, np.int32), np.zeros((0, 4), np.float32),
                   np.zeros(0, np.float32), np.zeros(0, np.int64))


def parse_detections(video_id: str, records: object, source: str | os.PathLike = "<detections>") -> VideoDetections:
    """Validate one video's frame records (see the module doc for the rules)."""
    video_id = str(video_id)
    if not isinstance(records, list):
        raise UserError(f"{source}: video {video_id}: expected a list of frame records")
    seen: set[int] = set()
    frames, boxes, scores, labels = [], [], [], []
    last = -1
    for pos, rec in enumerate(records):
        where = f"{source}: video {video_id}, frame record {pos}"
        f = record_frame(rec, where)
        if f in seen:
            raise UserError(f"{where}: frame {rec['name']} is listed twice")
        seen.add(f)
        last = max(last, f)
        labs = rec.get("labels")
        if not isinstance(labs, list):
            raise UserError(f"{where} ({rec['name']}): missing or malformed 'labels' list")
        for j, lab in enumerate(labs):
            w = f"{source}: video {video_id}, frame {rec['name']}, label {j}"
            x1, y1, x2, y2 = record_box(lab, w)
            if x2 < x1 or y2 < y1:
                raise UserError(f"{w}: inverted box (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}); boxes are "
                                "(x1, y1, x2, y2) pixels with x1 <= x2, y1 <= y2 (was (x, y, w, h) written?)")
            cls = class_of(lab.get("category"), lab.get("standard_category"))
            if cls is None:
                raise UserError(f"{w}: unknown class {lab.get('category')!r} (expected 'hand' or 'object', "
                                "or a Something-Else track id 'hand'/'0000'... in standard_category)")
            score = finite_number(lab["score"], w, "score") if "score" in lab else 1.0
            if not 0.0 <= score <= 1.0:
                raise UserError(f"{w}: score is {score:g}, expected a number in [0, 1]")
            frames.append(f)
            boxes.append((x1, y1, x2, y2))
            scores.append(score)
            labels.append(cls)
    return VideoDetections(video_id, last + 1, np.array(frames, np.int32), np.array(boxes, np.float32).reshape(-1, 4),
                           np.array(scores, np.float32), np.array(labels, np.int64))


def load_detections(path: str | os.PathLike) -> dict[str, VideoDetections]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object mapping video ids to frame records")
    return {str(vid): parse_detections(vid, recs, path) for vid, recs in data.items()}


def detections_to_records(det: VideoDetections, digits: int = 2) -> list[dict]:
    """Something-Else frame records, one per frame 0..num_frames-1 (empty `labels` where nothing was found)."""
    out = []
    for f, xyxy, score, label in det.frames():
        labels = [{"box2d": {k: round(float(v), digits) for k, v in zip(("x1", "y1", "x2", "y2"), box)},
                   "category": CLASSES[int(c)], "standard_category": "", "gt_annotation": "",
                   "score": round(float(s), 4)}
                  for box, s, c in zip(xyxy, score, label)]
        out.append({"name": frame_name(det.video_id, f), "labels": labels, "nr_instances": len(labels),
                    "gt_placeholders": []})
    return out


def save_detections(path: str | os.PathLike, detections: dict[str, VideoDetections]) -> None:
    write_json(path, {vid: detections_to_records(d) for vid, d in detections.items()})


# ------------------------------------------------------------------ ground truth at the detector's frames

def box_targets(vb: VideoBoxes, frame: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (clipped to the frame, degenerate ones dropped) and class indices (0 hand, 1 object)
    of decoded frame `frame`; empty arrays when the frame has no record or no box."""
    pos = int(np.searchsorted(vb.frame_index, frame))
    if pos >= len(vb.frame_index) or vb.frame_index[pos] != frame:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    k = np.flatnonzero(vb.box_frame == pos)
    xyxy = vb.xyxy[k].astype(np.float32).copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    labels = np.array([HAND_CLASS if vb.track[i] == HAND or vb.category[i].lower() == HAND else OBJECT_CLASS
                       for i in k], dtype=np.int64)
    keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    return xyxy[keep], labels[keep]


def spaced_annotated_frames(vb: VideoBoxes, num_frames: int, count: int) -> np.ndarray:
    """`count` evenly spaced annotated frames below `num_frames`: the frames held-out AP is measured on."""
    annotated = vb.frame_index[vb.frame_index < num_frames]
    if len(annotated) == 0:
        return annotated.astype(np.int64)
    pick = np.unique(np.linspace(0, len(annotated) - 1, num=min(count, len(annotated))).round().astype(int))
    return annotated[pick].astype(np.int64)
