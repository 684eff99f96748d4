"""Track-context rescoring of object detections: a per-frame detector seen through the whole video.

Why: Something-Else boxes only the objects an action involves. A per-frame detector also boxes the other
objects on the table (the synthetic set's distractors), and from one frame it cannot tell them apart.
The video can: an object of the action is found in most frames with a steady score, and it moves or the hand
reaches it. So every object detection gets a new score, the probability that it is a true object box, from a
logistic regression on its own score and the context of the track it belongs to:

    score, logit(score)                the detector's own belief
    track mean score                   the detection's track (ByteTrack, `TrackerConfig`): its mean detected score,
    track detected fraction            the fraction of the video's frames it was detected in,
    log(1 + travel)                    how far its box centre travels (box sizes, `identities.travel`),
    hand contact                       the largest fraction of its box the strongest hand track covers,
    log(1 + hand approach)             the closest gap to that hand track (box sizes, capped at 50),
    in a track                         1, or 0 for a detection no track took (its track features are 0 / the cap).

Hand detections keep their scores. The model is fitted on the training videos' detections (label: IoU >= 0.5
with a ground-truth object box of the frame) and applied to any video; it is a few numbers, stored as JSON.
A linear model on standardised features was chosen over gradient-boosted trees because the detector has
seen the training videos, and its scores are more confident there than on new videos: the trees learn that
confidence, the linear model less so (docs/video.md, "Track-context rescoring", has the figures).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.video.data.annotations import BoxSource, VideoBoxes
from .detections import HAND_CLASS, OBJECT_CLASS, VideoDetections, box_targets, spaced_annotated_frames
from .geometry import iou_matrix
from .identities import Identity, closest_approach, hand_contact, travel
from .tracker import TrackerConfig, track_video

FEATURES = ("score", "logit_score", "track_mean_score", "track_detected_fraction", "log_travel", "hand_contact",
            "log_hand_approach", "in_track")
APPROACH_CAP = 50.0  # box sizes: "far from the hand", and the value of a video without a hand track
KIND = "vislearn-track-context"
# the tracker that links detections for their context: the tracks' boxes are the detections themselves,
# so each detection is found in its track by its box; no gap filling (interpolated boxes are no detections)
CONTEXT_TRACKER = TrackerConfig(output="detection", fill_gaps=0)


def _identity(track, name: str = "") -> Identity:
    ident = Identity(name, track.label)
    ident.add(track)
    return ident


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def detection_features(det: VideoDetections, frames: Iterable[int] | None = None,
                       tracker: TrackerConfig = CONTEXT_TRACKER) -> tuple[np.ndarray, np.ndarray]:
    """(rows, features [n, len(FEATURES)]) for the video's object detections (rows index `det`'s arrays),
    only those on `frames` when given."""
    tracks = track_video(det, tracker)
    hands = [t for t in tracks if t.label == HAND_CLASS]
    hand = _identity(max(hands, key=lambda t: (t.strength, -t.track_id)), "hand") if hands else None
    context: dict[int, list[float]] = {}
    boxes_at: dict[int, list[tuple[np.ndarray, int]]] = {}
    for t in tracks:
        if t.label != OBJECT_CLASS:
            continue
        ident = _identity(t)
        detected = [s for s, d in zip(t.scores, t.detected) if d]
        approach = min(closest_approach(ident, [hand]), APPROACH_CAP) if hand is not None else APPROACH_CAP
        context[t.track_id] = [float(np.mean(detected)) if detected else 0.0, len(detected) / max(det.num_frames, 1),
                               math.log1p(travel(ident)), hand_contact(ident, hand), math.log1p(approach), 1.0]
        for f, b, d in zip(t.frames, t.boxes, t.detected):
            if d:
                boxes_at.setdefault(f, []).append((np.asarray(b, dtype=np.float64), t.track_id))
    alone = [0.0, 0.0, 0.0, 0.0, math.log1p(APPROACH_CAP), 0.0]
    wanted = None if frames is None else {int(f) for f in frames}
    rows = np.flatnonzero(det.label == OBJECT_CLASS)
    if wanted is not None:
        rows = rows[np.isin(det.frame[rows], list(wanted))]
    out = np.zeros((len(rows), len(FEATURES)))
    for k, i in enumerate(rows):
        s = float(det.score[i])
        candidates = boxes_at.get(int(det.frame[i]), [])
        track = None
        if candidates:
            iou = iou_matrix(det.xyxy[i][None].astype(np.float64), np.stack([b for b, _ in candidates]))[0]
            j = int(np.argmax(iou))
            track = candidates[j][1] if iou[j] > 0.95 else None
        out[k] = [s, float(_logit(s)), *(context[track] if track is not None else alone)]
    return rows, out


def true_object_flags(det: VideoDetections, rows: np.ndarray, gt: VideoBoxes, iou_threshold: float = 0.5) -> np.ndarray:
    """For each detection row: does it overlap a ground-truth object box of its frame by IoU >= threshold."""
    flags = np.zeros(len(rows), dtype=bool)
    for f in np.unique(det.frame[rows]):
        boxes, labels = box_targets(gt, int(f), np.inf, np.inf)
        objects = boxes[labels == OBJECT_CLASS].astype(np.float64)
        at = np.flatnonzero(det.frame[rows] == f)
        if len(objects) and len(at):
            flags[at] = iou_matrix(det.xyxy[rows[at]].astype(np.float64), objects).max(axis=1) >= iou_threshold
    return flags


@dataclass
class ContextRescorer:
    """Standardisation and logistic-regression weights over `FEATURES`, and how they were fitted."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    features: tuple[str, ...] = FEATURES
    fitted_on: dict = field(default_factory=dict)  # videos, detections, positives, frames per video, C

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def rescore(self, det: VideoDetections) -> VideoDetections:
        """The same detections, object scores replaced by the model's probability (hands unchanged)."""
        rows, x = detection_features(det)
        score = det.score.copy()
        if len(rows):
            score[rows] = self.probability(x).astype(np.float32)
        return VideoDetections(det.video_id, det.num_frames, det.frame.copy(), det.xyxy.copy(), score, det.label.copy())

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: object, source: str | os.PathLike = "<context>") -> "ContextRescorer":
        if not isinstance(d, dict) or d.get("kind") != KIND:
            raise UserError(f"{source}: not a track-context model (fit one with `vislearn video tracking fit-context`)")
        if tuple(d.get("features", ())) != FEATURES:
            raise UserError(f"{source}: its features {d.get('features')} are not this version's {list(FEATURES)}")
        try:
            model = cls([float(v) for v in d["mean"]], [float(v) for v in d["scale"]], [float(v) for v in d["coef"]],
                        float(d["intercept"]), FEATURES, dict(d.get("fitted_on", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{source}: bad track-context model ({e})") from None
        values = model.mean + model.scale + model.coef + [model.intercept]
        if any(len(v) != len(FEATURES) for v in (model.mean, model.scale, model.coef)) or \
                not all(math.isfinite(v) for v in values) or min(model.scale) <= 0:
            raise UserError(f"{source}: bad track-context model (need {len(FEATURES)} finite weights, scales > 0)")
        return model


def save_rescorer(path: str | os.PathLike, model: ContextRescorer) -> None:
    write_json(path, model.to_dict(), indent=1)


def load_rescorer(path: str | os.PathLike) -> ContextRescorer:
    return ContextRescorer.from_dict(read_json(path), path)


def fit_rescorer(detections: Mapping[str, VideoDetections], gt: BoxSource, video_ids: Sequence[str],
                 frames_per_video: int = 12, C: float = 1.0) -> ContextRescorer:
    """Fit on the object detections of `video_ids` at `frames_per_video` evenly spaced annotated frames each."""
    from sklearn.linear_model import LogisticRegression

    xs, ys = [], []
    used = [v for v in video_ids if v in detections and v in gt]
    for vid in used:
        det, boxes = detections[vid], gt.get(vid)
        rows, x = detection_features(det, spaced_annotated_frames(boxes, det.num_frames, frames_per_video))
        xs.append(x)
        ys.append(true_object_flags(det, rows, boxes))
    x = np.concatenate(xs) if xs else np.zeros((0, len(FEATURES)))
    y = np.concatenate(ys) if ys else np.zeros(0, bool)
    if len(y) == 0 or y.all() or not y.any():
        raise UserError(f"cannot fit the track-context model: {len(used)} video(s) with both detections and boxes give "
                        f"{int(y.sum())} true and {int((~y).sum())} false object detections; it needs both")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    lr = LogisticRegression(C=C, max_iter=5000).fit((x - mean) / scale, y)
    return ContextRescorer(mean.tolist(), scale.tolist(), lr.coef_[0].tolist(), float(lr.intercept_[0]), FEATURES,
                           {"videos": len(used), "detections": int(len(y)), "true": int(y.sum()),
                            "frames_per_video": frames_per_video, "C": C})


def detections_ap(detections: Mapping[str, VideoDetections], gt: BoxSource, video_ids: Sequence[str],
                  frames_per_video: int = 8, ignore: BoxSource | None = None,
                  frame_size: tuple[int, int] | None = None) -> dict:
    """Box AP@0.5 (`ap.box_ap`) of stored detections at the frames `evaluate-detector` scores: `frames_per_video`
    evenly spaced annotated frames of each video. With `ignore`: also with detections on those boxes ignored
    (`ignoring`). `frame_size` (width, height) clips the ground truth as the detector's loader does."""
    from .ap import box_ap

    width, height = frame_size or (np.inf, np.inf)
    preds, gts = [], []
    missing = [v for v in video_ids if v in gt and v not in detections]
    if missing:
        raise UserError(f"no detections for {len(missing)} video(s) of the list, e.g. {missing[0]}")
    for vid in video_ids:
        if vid not in gt:
            continue
        det, boxes = detections[vid], gt.get(vid)
        for f in spaced_annotated_frames(boxes, det.num_frames, frames_per_video):
            at = det.frame == f
            preds.append({"boxes": det.xyxy[at], "scores": det.score[at], "labels": det.label[at]})
            b, lab = box_targets(boxes, int(f), width, height)
            g = {"boxes": b, "labels": lab}
            if ignore is not None and vid in ignore:
                g["ignore_boxes"], g["ignore_labels"] = box_targets(ignore.get(vid), int(f), width, height)
            gts.append(g)
    out = box_ap(preds, [{"boxes": g["boxes"], "labels": g["labels"]} for g in gts], iou_thresholds=(0.5,))
    out["frames"] = len(preds)
    if ignore is not None:
        out["ignoring"] = box_ap(preds, gts, iou_thresholds=(0.5,))
    return out
