"""Something-Else box annotations: read, write, merge, and parse one video into arrays.

The file is a JSON object: video id -> list of per-frame records
  {"name": "<id>/0001.jpg", "labels": [{"box2d": {"x1","y1","x2","y2"}, "category": <noun>,
   "standard_category": "hand" | "0000" | "0001" ..., "gt_annotation": "object hand" | "object 0" ...}],
   "nr_instances": int, "gt_placeholders": [...], + annotation-tool fields (url, split, task_index)}
Boxes are in pixels of the 12-fps frames. Frame "<id>/0001.jpg" is decoded frame 0.

The raw dict is kept as read so that writing it back gives the same data; `parse_video` turns one
video's records into arrays (`VideoBoxes`), the form every loader uses, whether the boxes came from
this JSON or from the memory-mapped store (`box_store`, which also opens either: `open_boxes`).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json

HAND = "hand"
_FRAME_NAME = re.compile(r"(?:.*/)?0*(\d+)\.\w+$")


def frame_number(name: str) -> int:
    """'2/0001.jpg' -> 0 (annotation frame names are 1-based; decoded frames are 0-based)."""
    m = _FRAME_NAME.match(name)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"frame name {name!r} is not '<video id>/NNNN.jpg' (1-based)")
    return int(m.group(1)) - 1


def frame_name(video_id: str, index: int) -> str:
    return f"{video_id}/{index + 1:04d}.jpg"


@dataclass
class VideoBoxes:
    """One video's boxes as arrays. Box k lies on annotated frame `frame_index[box_frame[k]]`.

    `frame_index` is sorted and unique (0-based decoded frame numbers that carry an annotation
    record, possibly with no boxes). Coordinates are pixels (x1, y1, x2, y2), x1<=x2, y1<=y2.
    """

    video_id: str
    frame_index: np.ndarray  # int32 [F]
    box_frame: np.ndarray  # int32 [M], row into frame_index
    xyxy: np.ndarray  # float32 [M, 4]
    track: list[str]  # standard_category per box: "hand", "0000", ...
    category: list[str]  # noun per box
    gt_annotation: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    nr_instances: np.ndarray | None = None  # int per frame, as annotated
    issues: list[str] = field(default_factory=list)  # what was repaired while parsing

    @property
    def num_frames(self) -> int:
        """Annotated frames: one past the last annotated frame index (0 when empty)."""
        return int(self.frame_index[-1]) + 1 if len(self.frame_index) else 0

    def track_ids(self) -> list[str]:
        """Distinct track ids, hand first, then objects in id order."""
        ids = set(self.track)
        return ([HAND] if HAND in ids else []) + sorted(i for i in ids if i != HAND)

    def has_hand(self) -> bool:
        return HAND in self.track


class BoxSource(Protocol):
    """What loaders need from a box collection: the JSON file and the store both provide it."""

    def __contains__(self, video_id: object) -> bool: ...
    def __len__(self) -> int: ...
    def video_ids(self) -> list[str]: ...
    def get(self, video_id: str) -> VideoBoxes: ...


FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite_number(value: object, where: str, key: str) -> float:
    """`value` as a float that stays finite in float32 (boxes and scores are stored as float32: 1e300
    would become inf), or a UserError saying where (file, video, frame) and which field."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{where}: {key} is {value!r}, expected a number") from None
    if not math.isfinite(v):
        raise UserError(f"{where}: {key} is {v}, expected a finite number")
    if abs(v) > FLOAT32_MAX:
        raise UserError(f"{where}: {key} is {v:g}, beyond the float32 range (|x| <= {FLOAT32_MAX:.4g})")
    return v


def record_frame(rec: object, where: str) -> int:
    """The frame index of a frame record (from its 'name'), or a one-line error naming `where`."""
    if not isinstance(rec, dict) or "name" not in rec:
        raise UserError(f"{where}: expected an object with 'name' and 'labels'")
    try:
        return frame_number(str(rec["name"]))
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None


def record_box(lab: object, where: str) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a label's 'box2d', finite float32 numbers, or a one-line error naming `where`."""
    box = lab.get("box2d") if isinstance(lab, dict) else None
    if not isinstance(box, dict):
        raise UserError(f"{where}: expected an object with 'box2d'")
    missing = [k for k in ("x1", "y1", "x2", "y2") if k not in box]
    if missing:
        raise UserError(f"{where}: box2d has no '{missing[0]}'")
    x1, y1, x2, y2 = (finite_number(box[k], where, f"box2d.{k}") for k in ("x1", "y1", "x2", "y2"))
    return x1, y1, x2, y2


def parse_video(video_id: str, frames: object, source: str | os.PathLike = "<annotations>") -> VideoBoxes:
    """Validate and convert one video's frame records. Errors name the file, the video and the frame.

    A frame must be named for its video (`<video id>/NNNN.jpg`): "2/0003.jpg" among the frames of
    video 1 is an error. Repairs (reported in `issues`, not errors): inverted coordinates are swapped;
    a track id seen twice in one frame keeps its first box; frames listed twice keep the first record.
    """
    video_id = str(video_id)
    if not isinstance(frames, list):
        raise UserError(f"{source}: video {video_id}: expected a list of frame records")
    issues: list[str] = []
    rows: dict[int, dict] = {}
    placeholders: list[str] = []
    for pos, rec in enumerate(frames):
        where = f"{source}: video {video_id}, frame record {pos}"
        fi = record_frame(rec, where)
        folder = str(rec["name"]).rpartition("/")[0].rpartition("/")[2]
        if folder != video_id:  # "2/0003.jpg" among video 1's frames: another video's boxes
            raise UserError(f"{source}: video {video_id}, frame {rec['name']}: the frame is named for "
                            f"{'video ' + folder if folder else 'no video'}, not {video_id} "
                            f"(frames of video {video_id} are named '{video_id}/NNNN.jpg')")
        if fi in rows:
            issues.append(f"frame {rec['name']} listed twice; kept the first")
            continue
        if "labels" not in rec or not isinstance(rec["labels"], list):
            raise UserError(f"{where} ({rec['name']}): missing or malformed 'labels' list")
        rows[fi] = rec
        if not placeholders and isinstance(rec.get("gt_placeholders"), list):
            placeholders = [str(p) for p in rec["gt_placeholders"]]
    frame_index = np.array(sorted(rows), dtype=np.int32)
    box_frame, xyxy, track, category, gt_ann, nr_inst = [], [], [], [], [], []
    for row, fi in enumerate(frame_index):
        rec = rows[int(fi)]
        nr_inst.append(int(rec.get("nr_instances", len(rec["labels"])) or 0))
        seen: set[str] = set()
        for j, lab in enumerate(rec["labels"]):
            where = f"{source}: video {video_id}, frame {rec['name']}, label {j}"
            x1, y1, x2, y2 = record_box(lab, where)
            if x1 > x2 or y1 > y2:
                issues.append(f"frame {rec['name']}: inverted box swapped")
                x1, x2 = min(x1, x2), max(x1, x2)
                y1, y2 = min(y1, y2), max(y1, y2)
            tid = lab.get("standard_category")
            if not isinstance(tid, str) or not tid:
                raise UserError(f"{where}: missing 'standard_category' (track id 'hand' or '0000', '0001', ...)")
            if tid in seen:
                issues.append(f"frame {rec['name']}: track {tid} twice; kept the first")
                continue
            seen.add(tid)
            box_frame.append(row)
            xyxy.append((x1, y1, x2, y2))
            track.append(tid)
            category.append(str(lab.get("category", "")))
            gt_ann.append(str(lab.get("gt_annotation", "")))
    return VideoBoxes(
        video_id=video_id,
        frame_index=frame_index,
        box_frame=np.array(box_frame, dtype=np.int32),
        xyxy=np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        track=track,
        category=category,
        gt_annotation=gt_ann,
        placeholders=placeholders,
        nr_instances=np.array(nr_inst, dtype=np.int32),
        issues=issues,
    )


def video_to_records(vb: VideoBoxes, extra: dict | None = None) -> list[dict]:
    """The inverse of `parse_video`: Something-Else frame records (core fields, plus `extra` per frame)."""
    by_row: dict[int, list[dict]] = {r: [] for r in range(len(vb.frame_index))}
    for k in range(len(vb.track)):
        x1, y1, x2, y2 = (float(v) for v in vb.xyxy[k])
        by_row[int(vb.box_frame[k])].append({
            "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "category": vb.category[k],
            "standard_category": vb.track[k],
            "gt_annotation": vb.gt_annotation[k] if k < len(vb.gt_annotation) and vb.gt_annotation[k]
            else ("object hand" if vb.track[k] == HAND else f"object {int(vb.track[k])}" if vb.track[k].isdigit() else ""),
        })
    records = []
    for row, fi in enumerate(vb.frame_index):
        labels = by_row[row]
        rec = {"name": frame_name(vb.video_id, int(fi)), "labels": labels,
               "nr_instances": len(labels), "gt_placeholders": list(vb.placeholders)}
        if extra:
            rec.update(extra)
        records.append(rec)
    return records


class AnnotationFile:
    """A Something-Else JSON held in memory (fine for small files; use the store at scale)."""

    def __init__(self, data: dict[str, list], source: str | os.PathLike = "<annotations>"):
        self.data = data
        self.source = str(source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AnnotationFile":
        return cls(load_annotations(path), path)

    def __contains__(self, video_id: object) -> bool:
        return str(video_id) in self.data

    def __len__(self) -> int:
        return len(self.data)

    def video_ids(self) -> list[str]:
        return list(self.data)

    def get(self, video_id: str) -> VideoBoxes:
        video_id = str(video_id)
        if video_id not in self.data:
            raise KeyError(f"{self.source}: no boxes for video {video_id}")
        return parse_video(video_id, self.data[video_id], self.source)

    def __iter__(self) -> Iterator[VideoBoxes]:
        for vid in self.data:
            yield self.get(vid)


def load_annotations(path: str | os.PathLike) -> dict[str, list]:
    """Read a Something-Else JSON as it is (video id -> frame records)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object mapping video ids to frame records")
    for vid, frames in data.items():
        if not isinstance(frames, list):
            raise UserError(f"{path}: video {vid}: expected a list of frame records, got {type(frames).__name__}")
    return data


def save_annotations(path: str | os.PathLike, data: dict[str, list]) -> None:
    write_json(path, data)


def merge_annotations(paths: Iterable[str | os.PathLike]) -> dict[str, list]:
    """Merge part files (the release ships 4 parts). A video in two parts must be identical in both."""
    merged: dict[str, list] = {}
    origin: dict[str, str] = {}
    for path in paths:
        part = load_annotations(path)
        for vid, frames in part.items():
            if vid in merged:
                if merged[vid] != frames:
                    raise UserError(f"{path}: video {vid} is also in {origin[vid]} with different boxes")
                continue
            merged[vid] = frames
            origin[vid] = str(path)
    return merged
