"""Turn tracker tracks into Something-Else identities: `hand`, `0000`, `0001`, ...

The rule (documented in the CLI help too):
1. Tracks with fewer than `min_detections` detected frames are dropped (short false positives).
2. A track's strength is the sum of its detection scores (= number of detected frames x mean
   score): how long and how confidently it was tracked.
3. Hand: the strongest hand track becomes `hand`. Weaker hand tracks are merged into it when they
   share no frame with what `hand` already holds (a hand lost and found again, or the other hand
   appearing later: Something-Else has one hand id per video); overlapping ones are dropped.
4. Objects, strongest first: a track continues an existing object identity when it shares no frame
   with it, starts within `stitch_gap` frames of that identity's end (or ends within `stitch_gap`
   frames of its start) and the boxes at the two ends overlap (IoU >= `stitch_iou`); otherwise it
   opens a new identity.
5. Objects in play: Something-Else boxes only the objects the action involves, and a detector also
   finds the other objects on the table. An object identity is in play when it moves (its box centre
   travels at least `in_play_motion` x its box size over the video) or the hand touches it (the hand's
   box covers at least `in_play_contact` of the object's box in some frame); with `in_play_near`, also a
   static untouched object that an object in play comes within that many box sizes of (the reference
   object of "Putting [something] next to [something]"), numbered after the others in play. When any object is in
   play, the static untouched ones are dropped (with none in play all stay: the detector may have
   missed the hand). A threshold of 0 turns its own test off; both at 0 turn the rule off. Measured
   on the synthetic set's held-out videos: the objects are right in 47% of the videos without it and
   59% with it (README).
6. The `max_objects` strongest objects are kept (default 3: the models use 4 slots, hand + 3
   objects) and numbered `0000`, `0001`, ... by decreasing strength, so `0000` is the object
   tracked longest and most confidently.
The result is an ordinary Something-Else box file (category "hand" or "object", a `score` per
box), with a record for every frame of the video.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vislearn.video.data.annotations import HAND, frame_name
from .detections import HAND_CLASS, VideoDetections
from .geometry import iou_matrix
from .tracker import Track


@dataclass
class IdentityConfig:
    max_objects: int = 3  # object identities kept (the models' slots minus the hand)
    min_detections: int = 3  # detected frames a track needs to be kept
    stitch_gap: int = 24  # frames between two object fragments that may be joined (2 s)
    stitch_iou: float = 0.1  # overlap of the fragments' end boxes needed to join them
    # an object is in play when it moves this far (box-centre travel / box size) or the hand covers
    # this fraction of its box in some frame (0: that test off; both 0: every object in play); chosen on the
    # training videos of the synthetic set's compositional split
    in_play_motion: float = 0.3
    in_play_contact: float = 0.1
    # a static untouched object also counts as in play when an object in play comes within this many box
    # sizes of it (the reference object of "Putting [something] next to [something]"; 0: off). Off: 0.5 won on
    # training videos but lost on held-out ones (docs/video.md, "The reference object")
    in_play_near: float = 0.0
    # offline, each identity is followed past its first and last frame through the detections (any score the
    # tracker reads, >= low_score) while one overlaps its end box by this IoU (0: off). A track is born only after
    # `min_hits` confident detections, and the detector often finds the object before that at a lower score:
    # without it, the frames before a track's birth have no box, which costs the box model most of its loss on
    # videos whose identities are right (docs/video.md, "Following identities past their ends")
    extend_iou: float = 0.5
    extend_min_score: float = 0.1


@dataclass
class Identity:
    name: str  # "hand", "0000", ...
    label: int
    tracks: list[Track] = field(default_factory=list)
    frames: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)  # frame -> (xyxy, score)

    @property
    def strength(self) -> float:
        return sum(t.strength for t in self.tracks)

    def overlaps(self, t: Track) -> bool:
        return any(f in self.frames for f in t.frames)

    def add(self, t: Track) -> None:
        self.tracks.append(t)
        for f, b, s in zip(t.frames, t.boxes, t.scores):
            self.frames[f] = (np.asarray(b, dtype=np.float64), float(s))

    def ends(self) -> tuple[int, int]:
        return min(self.frames), max(self.frames)


def _continues(ident: Identity, t: Track, cfg: IdentityConfig) -> bool:
    if ident.overlaps(t) or not t.frames:
        return False
    first, last = ident.ends()
    if t.frames[0] > last:
        gap, a, b = t.frames[0] - last, ident.frames[last][0], t.boxes[0]
    elif t.frames[-1] < first:
        gap, a, b = first - t.frames[-1], t.boxes[-1], ident.frames[first][0]
    else:
        return False  # interleaved in time with the identity's frames
    return gap <= cfg.stitch_gap and iou_matrix(a, b)[0, 0] >= cfg.stitch_iou


def travel(ident: Identity) -> float:
    """How far the box centre moves over the identity's frames (largest x or y range), in box sizes
    (square root of the mean box area)."""
    boxes = np.stack([b for b, _ in ident.frames.values()])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return float(np.ptp(centres, axis=0).max() / box_size(boxes))


def box_size(boxes: np.ndarray) -> float:
    """The size of an identity's boxes [N, 4]: square root of their mean area (the unit of the in-play tests)."""
    return float(np.sqrt(np.maximum(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 1e-9).mean()))


def hand_contact(ident: Identity, hand: Identity | None) -> float:
    """Largest fraction of the object's box that the hand's box covers in a frame they share."""
    if hand is None:
        return 0.0
    shared = [f for f in ident.frames if f in hand.frames]
    if not shared:
        return 0.0
    obj = np.stack([ident.frames[f][0] for f in shared])
    hnd = np.stack([hand.frames[f][0] for f in shared])
    wh = np.clip(np.minimum(obj[:, 2:], hnd[:, 2:]) - np.maximum(obj[:, :2], hnd[:, :2]), 0, None)
    area = np.maximum(np.prod(obj[:, 2:] - obj[:, :2], axis=1), 1e-9)
    return float((wh[:, 0] * wh[:, 1] / area).max())


def closest_approach(ident: Identity, others: list[Identity]) -> float:
    """The smallest gap between the object's box and a box of `others` in a frame they share (0 when they
    overlap), in the object's box sizes (square root of its mean box area); inf when they share no frame."""
    gaps = []
    for other in others:
        shared = [f for f in ident.frames if f in other.frames]
        if not shared:
            continue
        a = np.stack([ident.frames[f][0] for f in shared])
        b = np.stack([other.frames[f][0] for f in shared])
        dx = np.maximum(np.maximum(a[:, 0] - b[:, 2], b[:, 0] - a[:, 2]), 0)
        dy = np.maximum(np.maximum(a[:, 1] - b[:, 3], b[:, 1] - a[:, 3]), 0)
        gaps.append(float(np.hypot(dx, dy).min()))
    if not gaps:
        return float("inf")
    return min(gaps) / box_size(np.stack([b for b, _ in ident.frames.values()]))


def in_play(ident: Identity, hand: Identity | None, cfg: IdentityConfig) -> bool:
    """A threshold of 0 turns its test off; with both off every object is in play."""
    if not cfg.in_play_motion and not cfg.in_play_contact:
        return True
    return bool((cfg.in_play_motion and travel(ident) >= cfg.in_play_motion)
                or (cfg.in_play_contact and hand_contact(ident, hand) >= cfg.in_play_contact))


def assign_identities(tracks: list[Track], config: IdentityConfig | None = None,
                      detections: VideoDetections | None = None) -> list[Identity]:
    """Identities in output order: `hand` first (when there is one), then `0000`, `0001`, ...; with the video's
    `detections`, each followed past its ends (`extend_ends`)."""
    cfg = config or IdentityConfig()
    kept = [t for t in tracks if sum(t.detected) >= cfg.min_detections]
    kept.sort(key=lambda t: (-t.strength, t.track_id))
    hand: Identity | None = None
    objects: list[Identity] = []
    for t in kept:
        if t.label == HAND_CLASS:
            if hand is None:
                hand = Identity(HAND, HAND_CLASS)
                hand.add(t)
            elif not hand.overlaps(t):
                hand.add(t)
            continue
        target = next((o for o in objects if _continues(o, t, cfg)), None)
        if target is not None:
            target.add(t)
        else:
            o = Identity("", t.label)
            o.add(t)
            objects.append(o)
    playing = sorted((o for o in objects if in_play(o, hand, cfg)), key=lambda o: -o.strength)
    if playing and cfg.in_play_near:  # after the ones that moved or were touched, as the annotations number them
        kept = {id(o) for o in playing}
        playing += sorted((o for o in objects if id(o) not in kept and closest_approach(o, playing) <= cfg.in_play_near),
                          key=lambda o: -o.strength)
    objects = (playing or sorted(objects, key=lambda o: -o.strength))[:cfg.max_objects]
    for k, o in enumerate(objects):
        o.name = f"{k:04d}"
    idents = ([hand] if hand is not None else []) + objects
    if detections is not None and cfg.extend_iou > 0:
        extend_ends(idents, detections, cfg)
    return idents


def extend_ends(idents: list[Identity], det: VideoDetections, cfg: IdentityConfig) -> None:
    """Follow each identity backwards from its first frame and forwards from its last, one frame at a time,
    through the video's detections of its class (score >= `extend_min_score`): the one overlapping its box at
    the end reached by the most IoU, at least `extend_iou`, extends it; the first frame without one stops it.
    A detection that overlaps another identity's box in that frame by as much is not taken. It runs after the
    identities are chosen and numbered, so the frames it adds change neither."""
    per_frame = {f: (xyxy, score, label) for f, xyxy, score, label in det.frames()}
    for ident in idents:
        others = [o for o in idents if o is not ident]
        first, last = ident.ends()
        for start, step, stop in ((first, -1, -1), (last, 1, det.num_frames)):
            box = ident.frames[start][0]
            for f in range(start + step, stop, step):  # frames outside the identity's span
                xyxy, score, label = per_frame[f]
                keep = (label == ident.label) & (score >= cfg.extend_min_score)
                taken = [o.frames[f][0] for o in others if f in o.frames]
                if taken and keep.any():
                    keep &= iou_matrix(xyxy, np.stack(taken)).max(1) < cfg.extend_iou
                if not keep.any():
                    break
                ious = np.where(keep, iou_matrix(xyxy, box[None])[:, 0], -1.0)
                k = int(ious.argmax())
                if ious[k] < cfg.extend_iou:
                    break
                box = np.asarray(xyxy[k], dtype=np.float64)
                ident.frames[f] = (box, float(score[k]))


def identities_to_records(video_id: str, identities: list[Identity], num_frames: int,
                          digits: int = 2) -> list[dict]:
    """Something-Else frame records for frames 0..num_frames-1 (hand first in each frame's labels)."""
    records = []
    for f in range(num_frames):
        labels = []
        for ident in identities:
            if f not in ident.frames:
                continue
            box, score = ident.frames[f]
            labels.append({
                "box2d": {k: round(float(v), digits) for k, v in zip(("x1", "y1", "x2", "y2"), box)},
                "category": HAND if ident.name == HAND else "object",
                "standard_category": ident.name,
                "gt_annotation": "object hand" if ident.name == HAND else f"object {int(ident.name)}",
                "score": round(score, 4),
            })
        records.append({"name": frame_name(video_id, f), "labels": labels, "nr_instances": len(labels),
                        "gt_placeholders": []})
    return records


def tracks_to_records(video_id: str, tracks: list[Track], num_frames: int, digits: int = 2) -> list[dict]:
    """Raw tracks (no identity rule) as Something-Else records: track ids `h<id>` / `o<id>`,
    category hand/object. For evaluating a tracker itself; the models expect `identities_to_records`."""
    idents = []
    for t in tracks:
        ident = Identity(("h" if t.label == HAND_CLASS else "o") + str(t.track_id), t.label)
        ident.add(t)
        idents.append(ident)
    records = []
    for f in range(num_frames):
        labels = [{"box2d": {k: round(float(v), digits) for k, v in zip(("x1", "y1", "x2", "y2"), i.frames[f][0])},
                   "category": HAND if i.label == HAND_CLASS else "object", "standard_category": i.name,
                   "gt_annotation": "", "score": round(i.frames[f][1], 4)}
                  for i in idents if f in i.frames]
        records.append({"name": frame_name(video_id, f), "labels": labels, "nr_instances": len(labels),
                        "gt_placeholders": []})
    return records
