"""Detections made from ground-truth boxes with a detector's typical errors, and the greedy
frame-to-frame IoU linker (the floor any tracker must beat). Used by the tests and the benchmark
to check the tracker on real Something-Else tracks without a trained detector.

`perturb_video` (all randomness from `rng`):
- jitter: centre moved by N(0, jitter x size), width/height scaled by exp(N(0, jitter));
- scores: N(0.8, 0.12) clipped to [0.05, 1] for true boxes, so some fall into ByteTrack's low band;
- missed detections: each box independently with `miss_rate`; plus occlusion bursts: with
  `burst_rate` per track, 3-8 consecutive frames where the box is missed (half of the time) or
  detected with a low score in [0.15, 0.5];
- false positives: Poisson(`fp_rate`) boxes per frame, random place, GT-like size, score U(0.05, 0.7),
  random class; duplicates: with `dup_rate` a shifted second box of a true object with a lower score;
- class confusion: with `flip_rate` a true box gets the other class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vislearn.video.data.annotations import HAND, VideoBoxes
from .detections import HAND_CLASS, OBJECT_CLASS, VideoDetections
from .geometry import iou_matrix
from .tracker import Track, run_tracker


@dataclass
class Perturbation:
    """A detector's typical errors, as rates (see the module docstring for how each is drawn)."""

    jitter: float = 0.05  # box centre and size noise, relative to the box size
    miss_rate: float = 0.1  # a true box is not detected
    burst_rate: float = 0.3  # a track has an occlusion burst (3-8 frames missed or low-scored)
    fp_rate: float = 0.3  # false positives per frame (Poisson mean)
    dup_rate: float = 0.05  # a true box is detected twice (shifted, lower score)
    flip_rate: float = 0.02  # a true box gets the other class


def perturb_video(vb: VideoBoxes, rng: np.random.Generator, p: Perturbation | None = None,
                  frame_size: tuple[int, int] = (427, 240)) -> VideoDetections:
    p = p or Perturbation()
    W, H = frame_size
    frames, boxes, scores, labels = [], [], [], []
    gt_frames = vb.frame_index[vb.box_frame] if len(vb.track) else np.zeros(0, np.int64)
    # occlusion bursts per track: frame -> "miss" | "low"
    burst: dict[tuple[str, int], str] = {}
    for tid in vb.track_ids():
        tf = np.sort(gt_frames[np.array(vb.track) == tid])
        if len(tf) > 4 and rng.random() < p.burst_rate:
            length = int(rng.integers(3, 9))
            start = int(rng.integers(0, max(1, len(tf) - length)))
            kind = "miss" if rng.random() < 0.5 else "low"
            for f in tf[start:start + length]:
                burst[(tid, int(f))] = kind
    sizes = vb.xyxy[:, 2:] - vb.xyxy[:, :2] if len(vb.track) else np.array([[60.0, 60.0]])
    for k in range(len(vb.track)):
        f = int(gt_frames[k])
        tid = vb.track[k]
        kind = burst.get((tid, f))
        if kind == "miss" or rng.random() < p.miss_rate:
            continue
        x1, y1, x2, y2 = (float(v) for v in vb.xyxy[k])
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        cx = (x1 + x2) / 2 + rng.normal(0, p.jitter * w)
        cy = (y1 + y2) / 2 + rng.normal(0, p.jitter * h)
        w *= float(np.exp(rng.normal(0, p.jitter)))
        h *= float(np.exp(rng.normal(0, p.jitter)))
        box = _clip((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), W, H)
        score = float(rng.uniform(0.15, 0.5)) if kind == "low" else float(np.clip(rng.normal(0.8, 0.12), 0.05, 1.0))
        cls = HAND_CLASS if tid == HAND or vb.category[k].lower() == HAND else OBJECT_CLASS
        if rng.random() < p.flip_rate:
            cls = 1 - cls
        frames.append(f), boxes.append(box), scores.append(score), labels.append(cls)
        if rng.random() < p.dup_rate:
            dx, dy = rng.normal(0, 0.25 * w), rng.normal(0, 0.25 * h)
            frames.append(f), boxes.append(_clip((box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy), W, H))
            scores.append(score * float(rng.uniform(0.3, 0.8))), labels.append(cls)
    for f in range(vb.num_frames):
        for _ in range(int(rng.poisson(p.fp_rate))):
            w, h = sizes[int(rng.integers(len(sizes)))]
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            frames.append(f), boxes.append(_clip((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), W, H))
            scores.append(float(rng.uniform(0.05, 0.7))), labels.append(int(rng.integers(2)))
    return VideoDetections(vb.video_id, vb.num_frames, np.array(frames, np.int32),
                           np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                           np.array(labels, np.int64))


def _clip(box, W: float, H: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    x1, x2 = min(max(x1, 0.0), W), min(max(x2, 0.0), W)
    y1, y2 = min(max(y1, 0.0), H), min(max(y2, 0.0), H)
    return (x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0))


class GreedyLinker:
    """The floor: each detection scoring >= `min_score` joins the same-class track of the previous
    frame it overlaps most (greedy, highest IoU first, IoU >= `min_iou`), else starts a new track.
    No motion model, no gap bridging, no low-score recovery. A `tracker.Tracker`."""

    def __init__(self, min_score: float = 0.5, min_iou: float = 0.3):
        self.min_score, self.min_iou = min_score, min_iou
        self.tracks: list[Track] = []
        self.prev: list[Track] = []  # the tracks of the previous frame
        self.frame = -1
        self._next_id = 1

    def update(self, xyxy: np.ndarray, score: np.ndarray, label: np.ndarray) -> list[Track]:
        self.frame += 1
        f = self.frame
        keep = (score >= self.min_score) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        xyxy, score, label = xyxy[keep], score[keep], label[keep]
        prev, cur = self.prev, []
        iou = iou_matrix(np.array([t.boxes[-1] for t in prev]).reshape(-1, 4), xyxy)
        if iou.size:
            iou = np.where(np.array([t.label for t in prev])[:, None] == label[None, :], iou, 0.0)
        taken_t, taken_d = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable") if iou.size else []:
            r, c = divmod(int(flat), iou.shape[1])
            if iou[r, c] < self.min_iou:
                break
            if r in taken_t or c in taken_d:
                continue
            taken_t.add(r), taken_d.add(c)
            t = prev[r]
            t.frames.append(f), t.boxes.append(xyxy[c].astype(np.float64)), t.scores.append(float(score[c]))
            t.detected.append(True)
            cur.append(t)
        for c in range(len(xyxy)):
            if c not in taken_d:
                t = Track(self._next_id, int(label[c]), [f], [xyxy[c].astype(np.float64)], [float(score[c])], [True],
                          state="tracked")
                self._next_id += 1
                self.tracks.append(t)
                cur.append(t)
        self.prev = cur
        return cur

    def finish(self) -> list[Track]:
        return self.tracks


def greedy_link(det: VideoDetections, min_score: float = 0.5, min_iou: float = 0.3) -> list[Track]:
    """`GreedyLinker` over one video's detections."""
    return run_tracker(GreedyLinker(min_score, min_iou), det)
