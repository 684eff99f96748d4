"""ByteTrack-style multi-object tracker for hands and objects.

Per frame (`ByteTracker.update`):
1. every track's box is predicted one frame ahead (constant-velocity Kalman filter, `kalman.py`);
2. detections are split by score: high (>= `high_score`) and low (`low_score` <= s < `high_score`);
   below `low_score` they are ignored, as are zero-width/height boxes;
3. stage 1: confirmed tracks (tracked and lost) vs high detections, Hungarian assignment
   (scipy `linear_sum_assignment`) on the cost 1 - IoU (x score when `fuse_score`), pairs below
   `match_iou` IoU refused;
4. stage 2: tracks still unmatched that were tracked on the previous frame vs the LOW detections
   (IoU >= `low_match_iou`): this is ByteTrack's recovery of occluded/blurred objects;
5. tentative tracks vs the remaining high detections (IoU >= `tentative_iou`); a tentative track
   that misses a frame is dropped, one with `min_hits` consecutive hits is confirmed (birth);
6. remaining high detections with score >= `new_track_score` start tentative tracks;
7. confirmed tracks unmatched for more than `max_gap` frames end (death).
Association is class-aware: the IoU between a hand and an object is taken as 0, so a hand track
never takes an object detection (and vice versa).

Offline extras (the whole video is known): a confirmed track keeps the boxes of its tentative
frames, and `fill_gaps` can interpolate the frames a track was lost for (linear, up to a gap).
Output boxes are the Kalman posterior (`output="filtered"`, smoother) or the matched detection.

Any tracker with the same two methods (`Tracker`: `update` per frame -> tracks, `finish` -> tracks)
runs through `run_tracker` / `track_video` and `actions.infer` in its place, e.g. the greedy linker
of `simulate.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detections import VideoDetections
from .geometry import cxcywh_to_xyxy, diou_matrix, iou_matrix, xyxy_to_cxcywh
from .kalman import KalmanFilter

TENTATIVE, TRACKED, LOST, REMOVED = "tentative", "tracked", "lost", "removed"


@dataclass
class TrackerConfig:
    high_score: float = 0.5  # stage-1 detections
    low_score: float = 0.1  # stage-2 detections are in [low_score, high_score)
    new_track_score: float = 0.6  # a detection must score this to start a track
    match_iou: float = 0.2  # stage 1 (predicted box vs high detection)
    low_match_iou: float = 0.5  # stage 2 (vs low detections)
    tentative_iou: float = 0.1  # tentative tracks vs remaining high detections (low: a hand entering
    #                             the frame at 12 fps moves far between its first two frames)
    min_hits: int = 2  # consecutive hits before a track is born
    max_gap: int = 12  # frames a lost track waits for a detection (1 s at 12 fps)
    fuse_score: bool = True  # stage-1 cost uses IoU x detection score
    similarity: str = "iou"  # "iou" or "diou" (IoU minus normalised centre distance)
    output: str = "filtered"  # "filtered" (Kalman posterior) or "detection" (matched box)
    fill_gaps: int = 12  # interpolate gaps up to this many frames in `track_video` (0: off)
    std_position: float = 1 / 20
    std_velocity: float = 1 / 160
    std_measurement: float = 1 / 20

    def check(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= 1:
            raise ValueError("need 0 <= low_score <= high_score <= 1")
        if self.min_hits < 1 or self.max_gap < 0 or self.fill_gaps < 0:
            raise ValueError("min_hits must be >= 1, max_gap and fill_gaps >= 0")
        if self.output not in ("filtered", "detection"):
            raise ValueError(f"output must be 'filtered' or 'detection', got {self.output!r}")


@dataclass
class Track:
    """A track's boxes over the video. `detected[k]` is False for interpolated boxes."""

    track_id: int
    label: int  # 0 hand, 1 object
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # xyxy
    scores: list[float] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)
    state: str = TENTATIVE
    hits: int = 0
    last_frame: int = -1
    was_tracked: bool = True  # matched on the previous frame (stage 2 only uses these)
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def strength(self) -> float:
        """Sum of the detection scores of its detected frames: how long and how confidently tracked."""
        return float(sum(s for s, d in zip(self.scores, self.detected) if d))


def _assign(iou: np.ndarray, min_iou: float, weight: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Hungarian assignment maximising IoU (x weight per column); pairs below `min_iou` IoU refused."""
    if iou.size == 0:
        return []
    sim = np.where(iou > 0, iou * weight[None, :], iou) if weight is not None else iou
    allowed = iou >= min_iou
    if not allowed.any():
        return []
    cost = np.where(allowed, 1.0 - sim, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


class ByteTracker:
    """Online tracker: call `update` once per frame in order, then `finish` for the tracks."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.config.check()
        self.kf = KalmanFilter(self.config.std_position, self.config.std_velocity, self.config.std_measurement)
        self.active: list[Track] = []  # tentative, tracked and lost tracks
        self.finished: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def _predicted(self, tracks: list[Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        return cxcywh_to_xyxy(np.stack([t.mean[:4] for t in tracks]))

    def _class_iou(self, tracks: list[Track], boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        fn = diou_matrix if self.config.similarity == "diou" else iou_matrix
        iou = fn(self._predicted(tracks), boxes)
        if iou.size:
            same = np.array([t.label for t in tracks])[:, None] == labels[None, :]
            iou = np.where(same, iou, -1.0)
        return iou

    def _apply(self, pairs: list[tuple[Track, int]], boxes: np.ndarray, scores: np.ndarray) -> None:
        if not pairs:
            return
        tracks = [t for t, _ in pairs]
        idx = np.array([d for _, d in pairs])
        z = xyxy_to_cxcywh(boxes[idx])
        mean, cov = self.kf.update(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), z)
        out = cxcywh_to_xyxy(mean[:, :4]) if self.config.output == "filtered" else boxes[idx].astype(np.float64)
        for k, t in enumerate(tracks):
            t.mean, t.cov = mean[k], cov[k]
            t.frames.append(self.frame)
            t.boxes.append(out[k])
            t.scores.append(float(scores[idx[k]]))
            t.detected.append(True)
            t.hits += 1
            t.last_frame = self.frame

    def update(self, xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[Track]:
        """Process the next frame's detections; returns the confirmed tracks matched on this frame."""
        cfg = self.config
        self.frame += 1
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        valid = (scores >= cfg.low_score) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        xyxy, scores, labels = xyxy[valid], scores[valid], labels[valid]

        # 1. predict
        if self.active:
            mean, cov = self.kf.predict(np.stack([t.mean for t in self.active]), np.stack([t.cov for t in self.active]))
            for k, t in enumerate(self.active):
                t.mean, t.cov = mean[k], cov[k]
        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero(scores < cfg.high_score)
        confirmed = [t for t in self.active if t.state in (TRACKED, LOST)]
        tentative = [t for t in self.active if t.state == TENTATIVE]

        # 2. stage 1: confirmed tracks vs high detections
        iou = self._class_iou(confirmed, xyxy[high], labels[high])
        pairs = _assign(iou, cfg.match_iou, scores[high] if cfg.fuse_score else None)
        matched = [(confirmed[r], int(high[c])) for r, c in pairs]
        used_t = {r for r, _ in pairs}
        used_high = {c for _, c in pairs}
        rest = [t for k, t in enumerate(confirmed) if k not in used_t]

        # 3. stage 2: tracks that were tracked on the previous frame vs low detections
        recent = [t for t in rest if t.was_tracked]
        iou = self._class_iou(recent, xyxy[low], labels[low])
        pairs2 = _assign(iou, cfg.low_match_iou)
        matched += [(recent[r], int(low[c])) for r, c in pairs2]
        matched_ids = {id(t) for t, _ in matched}

        # 4. tentative tracks vs remaining high detections
        rem_high = np.array([h for k, h in enumerate(high) if k not in used_high], dtype=np.int64)
        iou = self._class_iou(tentative, xyxy[rem_high], labels[rem_high])
        pairs3 = _assign(iou, cfg.tentative_iou)
        matched_tent = [(tentative[r], int(rem_high[c])) for r, c in pairs3]
        used_rem = {c for _, c in pairs3}

        self._apply(matched + matched_tent, xyxy, scores)
        for t, _ in matched:
            t.state, t.was_tracked = TRACKED, True
        for t, _ in matched_tent:
            if t.hits >= cfg.min_hits:
                t.state = TRACKED
        tent_ids = {id(t) for t, _ in matched_tent}
        survivors: list[Track] = []
        for t in self.active:
            if t.state == TENTATIVE and id(t) not in tent_ids:
                continue  # a tentative track must hit on consecutive frames
            if t.state in (TRACKED, LOST) and id(t) not in matched_ids and id(t) not in tent_ids:
                t.state, t.was_tracked = LOST, False
                if self.frame - t.last_frame > cfg.max_gap:
                    t.state = REMOVED
                    self.finished.append(t)
                    continue
            survivors.append(t)

        # 5. births
        new_dets = [int(rem_high[c]) for c in range(len(rem_high)) if c not in used_rem
                    and scores[rem_high[c]] >= cfg.new_track_score]
        if new_dets:
            mean, cov = self.kf.initiate(xyxy_to_cxcywh(xyxy[new_dets]))
            for k, d in enumerate(new_dets):
                t = Track(self._next_id, int(labels[d]), mean=mean[k], cov=cov[k])
                self._next_id += 1
                t.frames.append(self.frame)
                t.boxes.append(xyxy[d].astype(np.float64))
                t.scores.append(float(scores[d]))
                t.detected.append(True)
                t.hits, t.last_frame = 1, self.frame
                if cfg.min_hits <= 1:
                    t.state = TRACKED
                survivors.append(t)
        self.active = survivors
        return [t for t in self.active if t.state == TRACKED and t.last_frame == self.frame]

    def finish(self) -> list[Track]:
        """All confirmed tracks (ended and still alive), in order of birth."""
        done = self.finished + [t for t in self.active if t.state in (TRACKED, LOST)]
        return sorted(done, key=lambda t: t.track_id)


class Tracker(Protocol):
    """A multi-object tracker: detections of one frame at a time, in order, then the video's tracks."""

    def update(self, xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[Track]:
        """Next frame's detections (boxes [k,4] xyxy pixels, scores [k], class indices [k]); the tracks
        matched on this frame."""
        ...

    def finish(self) -> list[Track]:
        """Every track of the video (ended and still alive)."""
        ...


def run_tracker(tracker: Tracker, det: VideoDetections) -> list[Track]:
    """Feed one video's detections to `tracker`, frame by frame (empty frames included)."""
    for _, xyxy, score, label in det.frames():
        tracker.update(xyxy, score, label)
    return tracker.finish()


def fill_gaps(tracks: list[Track], max_gap: int) -> list[Track]:
    """Linearly interpolate each track over the frames it was lost for, when the gap is at most
    `max_gap` frames. Interpolated boxes get the lower score of their two ends and detected=False."""
    if max_gap <= 0:
        return tracks
    for t in tracks:
        if len(t.frames) < 2:
            continue
        frames, boxes, scores, det = [], [], [], []
        for k in range(len(t.frames)):
            if k:
                f0, f1 = t.frames[k - 1], t.frames[k]
                gap = f1 - f0 - 1
                if 0 < gap <= max_gap:
                    for f in range(f0 + 1, f1):
                        a = (f - f0) / (f1 - f0)
                        frames.append(f)
                        boxes.append((1 - a) * t.boxes[k - 1] + a * t.boxes[k])
                        scores.append(min(t.scores[k - 1], t.scores[k]))
                        det.append(False)
            frames.append(t.frames[k])
            boxes.append(t.boxes[k])
            scores.append(t.scores[k])
            det.append(t.detected[k])
        t.frames, t.boxes, t.scores, t.detected = frames, boxes, scores, det
    return tracks


def track_video(det: VideoDetections, config: TrackerConfig | None = None,
                tracker: Tracker | None = None) -> list[Track]:
    """Track one video's detections (frames 0..num_frames-1, empty frames included) with `tracker`
    (default: a `ByteTracker` of `config`), then fill gaps up to `config.fill_gaps` frames."""
    config = config or TrackerConfig()
    tracks = run_tracker(tracker if tracker is not None else ByteTracker(config), det)
    return fill_gaps(tracks, config.fill_gaps)
