"""Put one video's box tracks into a fixed number of slots for the sampled frames.

Clean layout (default): slot 0 is the hand, slots 1..N-1 the objects in track-id order
("0000", "0001", ...). Which tracks get slots is decided over the WHOLE video, so a track keeps
its slot whatever frames are sampled. A video without a hand leaves slot 0 empty; objects
beyond N-1 are dropped (`Slots.dropped` lists them). `box_mask[t, n]` is True only where slot
n's track has a box on frame t; `box_ids[n]` is 1 (hand), 2 (object) or 0 (empty slot).

Official layout (`official_slots=True`, reproduces the released Something-Else loader): the tracks
seen on the SAMPLED frames, sorted as strings - so objects first in id order and "hand" in the
last used slot - fill slots 0..K-1; tracks beyond N are dropped. The official loader had no mask:
a used slot whose track is absent on a frame is an all-zero box that the model still averages
in. Here that is: `box_mask[:, n]` is True on every frame for each used slot (zero boxes where
the track is absent), False for unused slots; models reproducing the official behaviour average
over all N slots and ignore the mask.

Frames without an annotation record (e.g. real video 151201: 33 decoded frames, 23 annotated)
simply have no boxes: every slot is masked on them in the clean layout; in the official layout
they are zero boxes in used (unmasked) slots, as the official model saw them. Which frames to
ask for is the caller's policy (`video.data.clip_dataset`).
Boxes stay in source pixels (x1, y1, x2, y2); `video.data.transforms.boxes_to_view` normalises them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .annotations import HAND, VideoBoxes

EMPTY, HAND_ID, OBJECT_ID = 0, 1, 2


@dataclass
class Slots:
    boxes: np.ndarray  # float32 [T, N, 4] pixel xyxy, zeros where empty
    box_ids: np.ndarray  # int64 [N]: 0 empty, 1 hand, 2 object
    box_mask: np.ndarray  # bool [T, N]
    tracks: list[str | None]  # track id held by each slot
    dropped: list[str] = field(default_factory=list)  # tracks that found no slot


def annotated_rows(vb: VideoBoxes, frames: Sequence[int] | np.ndarray) -> np.ndarray:
    """Row into `vb.frame_index` for each decoded frame index, -1 where the frame has no record."""
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    fi = vb.frame_index
    if len(fi) == 0:
        return np.full(len(frames), -1, dtype=np.int64)
    pos = np.searchsorted(fi, frames)
    ok = (pos < len(fi)) & (fi[np.minimum(pos, len(fi) - 1)] == frames)
    return np.where(ok, pos, -1)


def assign_tracks(vb: VideoBoxes, num_slots: int, rows: np.ndarray | None = None,
                  official_slots: bool = False) -> tuple[list[str | None], list[str]]:
    """Slot -> track id (None when empty), and the tracks that were dropped."""
    if official_slots:
        on = np.isin(vb.box_frame, rows[rows >= 0]) if rows is not None else np.ones(len(vb.track), bool)
        ids = sorted({t for t, keep in zip(vb.track, on) if keep})
        used = ids[:num_slots]
        return used + [None] * (num_slots - len(used)), ids[num_slots:]
    ids = vb.track_ids()  # hand first, objects sorted
    objects = [t for t in ids if t != HAND]
    slots: list[str | None] = [HAND if HAND in ids else None] + objects[: num_slots - 1]
    slots += [None] * (num_slots - len(slots))
    return slots[:num_slots], objects[num_slots - 1:]


def fill_slots(vb: VideoBoxes, frames: Sequence[int] | np.ndarray, num_slots: int = 4,
               official_slots: bool = False) -> Slots:
    """Boxes of `vb` on the decoded frames `frames` (0-based, any order, repeats allowed)."""
    if num_slots < 1:
        raise ValueError(f"num_slots must be >= 1, got {num_slots}")
    rows = annotated_rows(vb, frames)
    t_len = len(rows)
    tracks, dropped = assign_tracks(vb, num_slots, rows, official_slots)
    slot_of = {t: n for n, t in enumerate(tracks) if t is not None}
    box_ids = np.array([EMPTY if t is None else HAND_ID if t == HAND else OBJECT_ID for t in tracks], dtype=np.int64)
    boxes = np.zeros((t_len, num_slots, 4), dtype=np.float32)
    present = np.zeros((t_len, num_slots), dtype=bool)
    if len(vb.track):
        box_slot = np.array([slot_of.get(t, -1) for t in vb.track], dtype=np.int64)
        hit = (vb.box_frame[None, :] == rows[:, None]) & (rows[:, None] >= 0) & (box_slot[None, :] >= 0)
        t_idx, k_idx = np.nonzero(hit)
        boxes[t_idx, box_slot[k_idx]] = vb.xyxy[k_idx]
        present[t_idx, box_slot[k_idx]] = True
    if official_slots:
        mask = np.repeat((box_ids != EMPTY)[None, :], t_len, axis=0)
    else:
        mask = present
    return Slots(boxes=boxes, box_ids=box_ids, box_mask=mask, tracks=tracks, dropped=dropped)
