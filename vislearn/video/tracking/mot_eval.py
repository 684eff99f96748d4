"""Multi-object tracking evaluation of Something-Else box files with py-motmetrics.

Ground truth and prediction are both Something-Else box files (or stores). Per video, a
motmetrics accumulator gets one update per annotated ground-truth frame: object ids are the
ground-truth track ids ("hand", "0000", ...), hypothesis ids the predicted ones, mapped to
integers (pandas >= 3 refuses string ids). The distance is 1 - IoU, computed here (motmetrics
1.4.0's `iou_matrix` calls `np.asfarray`, gone in numpy 2); pairs below `iou_threshold` (0.5) or of
different classes (hand vs object; `class_aware=False` lifts this) cannot match.

Frames: only frames with a ground-truth record are scored (real annotations do not always cover
every decoded frame; a predicted box on an unannotated frame is neither right nor wrong).
A video missing from the prediction scores all its boxes as misses; predicted videos without
ground truth are listed and ignored.

Overall figures are summed over videos from the per-video counts (motmetrics'
`merge_event_dataframes` is broken on pandas >= 2): MOTA = 1 - (FN + FP + IDSW) / GT,
IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN), precision = TP / (TP + FP), recall = TP / GT.

Identities (`identity_check`): what a box model sees is one track per slot, so per video: does the
predicted `hand` follow the true hand, and does each true object get a predicted object identity of
its own, with no extra one? A predicted identity follows a true one when their boxes match (IoU >=
the threshold, same class) in at least half of the true identity's annotated frames; true and
predicted objects are paired one to one (Hungarian, most matched frames). `hand_right`,
`objects_right` (every true object followed, no extra predicted object: a distractor or a fragment in
a slot counts against), `identities_right` (both), and `same_slots` (also each pairing under the same
id, 0000 with 0000, ...: the slot order a model sees); overall, the fraction of videos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from vislearn.video.data.annotations import HAND, BoxSource, VideoBoxes
from .geometry import iou_matrix

COUNTS = ("num_frames", "num_objects", "num_predictions", "num_true_positives", "num_false_positives", "num_misses",
          "num_switches", "idtp", "idfp", "idfn", "num_unique_objects", "mostly_tracked", "mostly_lost",
          "num_fragmentations")
_MM_METRICS = ["num_frames", "num_objects", "num_detections", "num_false_positives", "num_misses",
               "num_switches", "idtp", "idfp", "idfn", "num_unique_objects", "mostly_tracked", "mostly_lost",
               "num_fragmentations"]


def box_classes(vb: VideoBoxes) -> np.ndarray:
    """0 hand, 1 object for each box (hand: track id 'hand' or category 'hand')."""
    return np.array([0 if t == HAND or c.lower() == HAND else 1 for t, c in zip(vb.track, vb.category)],
                    dtype=np.int64)


@dataclass
class MotResult:
    per_video: dict[str, dict] = field(default_factory=dict)
    overall: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # ground-truth videos without a prediction
    extra: list[str] = field(default_factory=list)  # predicted videos without ground truth


def rates(c: Mapping[str, float]) -> dict:
    """MOTA, IDF1, precision, recall (and the counts) from summed counts."""
    gt, fp, fn, sw = c["num_objects"], c["num_false_positives"], c["num_misses"], c["num_switches"]
    tp = c["num_true_positives"]
    id_denominator = 2 * c["idtp"] + c["idfp"] + c["idfn"]
    out = {
        "mota": 1.0 - (fn + fp + sw) / gt if gt else math.nan,
        "idf1": 2 * c["idtp"] / id_denominator if id_denominator else math.nan,
        "id_switches": int(sw),
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / gt if gt else math.nan,
    }
    out.update({k: int(c[k]) for k in COUNTS})
    return out


def accumulate(gt: VideoBoxes, pred: VideoBoxes | None, iou_threshold: float = 0.5, class_aware: bool = True):
    """A motmetrics accumulator for one video."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    gt_ids = {t: k + 1 for k, t in enumerate(gt.track_ids())}
    gt_cls = box_classes(gt)
    if pred is not None:
        pred_ids = {t: k + 1 for k, t in enumerate(sorted(set(pred.track)))}
        pred_cls = box_classes(pred)
        pred_frames = pred.frame_index[pred.box_frame]
    for row, f in enumerate(gt.frame_index):
        g = np.flatnonzero(gt.box_frame == row)
        if pred is not None:
            p = np.flatnonzero(pred_frames == f)
        else:
            p = np.zeros(0, dtype=np.int64)
        dist = np.full((len(g), len(p)), np.nan)
        if len(g) and len(p):
            iou = iou_matrix(gt.xyxy[g], pred.xyxy[p])
            ok = iou >= iou_threshold
            if class_aware:
                ok &= gt_cls[g][:, None] == pred_cls[p][None, :]
            dist = np.where(ok, 1.0 - iou, np.nan)
        acc.update([gt_ids[gt.track[k]] for k in g], [pred_ids[pred.track[k]] for k in p] if len(p) else [], dist)
    return acc


IDENTITY_FIGURES = ("hand_right", "objects_right", "identities_right", "same_slots")


def identity_check(gt: VideoBoxes, pred: VideoBoxes | None, iou_threshold: float = 0.5,
                   coverage: float = 0.5) -> dict:
    """Whether the predicted identities of one video are the true ones (see the module's docstring)."""
    from scipy.optimize import linear_sum_assignment

    gt_ids = gt.track_ids()
    pred_ids = pred.track_ids() if pred is not None else []
    matched = np.zeros((len(gt_ids), len(pred_ids)))
    frames = np.zeros(len(gt_ids))
    g_row = {t: k for k, t in enumerate(gt_ids)}
    p_col = {t: k for k, t in enumerate(pred_ids)}
    gt_cls = box_classes(gt)
    if pred is not None:
        pred_cls = box_classes(pred)
        pred_frames = pred.frame_index[pred.box_frame]
    for row, f in enumerate(gt.frame_index):
        g = np.flatnonzero(gt.box_frame == row)
        for k in g:
            frames[g_row[gt.track[k]]] += 1
        if pred is None or not len(g):
            continue
        p = np.flatnonzero(pred_frames == f)
        if not len(p):
            continue
        ok = (iou_matrix(gt.xyxy[g], pred.xyxy[p]) >= iou_threshold) & (gt_cls[g][:, None] == pred_cls[p][None, :])
        for i, j in zip(*np.nonzero(ok)):
            matched[g_row[gt.track[g[i]]], p_col[pred.track[p[j]]]] += 1
    follows = matched >= coverage * np.maximum(frames, 1)[:, None]
    hand_right = HAND not in g_row or (HAND in p_col and bool(follows[g_row[HAND], p_col[HAND]]))
    g_obj = [g_row[t] for t in gt_ids if t != HAND]
    p_obj = [p_col[t] for t in pred_ids if t != HAND]
    pairs = []
    if g_obj and p_obj:
        rows, cols = linear_sum_assignment(-matched[np.ix_(g_obj, p_obj)])
        pairs = [(g_obj[r], p_obj[c]) for r, c in zip(rows, cols) if follows[g_obj[r], p_obj[c]]]
    objects_right = len(pairs) == len(g_obj) == len(p_obj)
    same = objects_right and all(gt_ids[g] == pred_ids[p] for g, p in pairs)
    return {"hand_right": hand_right, "objects_right": objects_right,
            "identities_right": hand_right and objects_right, "same_slots": hand_right and same}


def evaluate_video(gt: VideoBoxes, pred: VideoBoxes | None, iou_threshold: float = 0.5,
                   class_aware: bool = True) -> dict:
    import motmetrics as mm

    acc = accumulate(gt, pred, iou_threshold, class_aware)
    summary = mm.metrics.create().compute(acc, metrics=_MM_METRICS, name="v")
    counts = {k: float(summary[k].iloc[0]) for k in _MM_METRICS}
    # motmetrics' num_detections = matched ground-truth boxes, identity switches included (its
    # num_matches excludes switches): that is the true-positive count.
    counts["num_true_positives"] = counts.pop("num_detections")
    counts["num_predictions"] = counts["num_true_positives"] + counts["num_false_positives"]
    return {k: (0.0 if isinstance(v, float) and math.isnan(v) else v) for k, v in counts.items()}


def evaluate(gt: BoxSource | Mapping[str, VideoBoxes], pred: BoxSource | Mapping[str, VideoBoxes],
             iou_threshold: float = 0.5, class_aware: bool = True, videos: list[str] | None = None) -> MotResult:
    """Per-video and overall MOT figures. `gt`/`pred`: box files/stores or dicts of VideoBoxes."""
    gt_ids = list(videos) if videos is not None else _ids(gt)
    pred_ids = set(_ids(pred))
    result = MotResult()
    total = {k: 0.0 for k in COUNTS}
    for vid in gt_ids:
        g = _get(gt, vid)
        p = _get(pred, vid) if vid in pred_ids else None
        if p is None:
            result.missing.append(vid)
        counts = evaluate_video(g, p, iou_threshold, class_aware)
        for k in COUNTS:
            total[k] += counts[k]
        result.per_video[vid] = rates(counts) | identity_check(g, p, iou_threshold)
    result.extra = sorted(pred_ids - set(_ids(gt)))  # predicted videos without any ground truth
    result.overall = rates(total)
    result.overall["videos"] = len(gt_ids)
    for k in IDENTITY_FIGURES:
        result.overall[k] = float(np.mean([r[k] for r in result.per_video.values()])) if gt_ids else math.nan
    return result


def _ids(source) -> list[str]:
    return source.video_ids() if hasattr(source, "video_ids") else list(source)


def _get(source, vid: str) -> VideoBoxes:
    return source.get(vid) if hasattr(source, "get") and not isinstance(source, dict) else source[vid]


def format_table(result: MotResult, per_video: bool = True) -> str:
    head = f"{'video':>12} {'MOTA':>7} {'IDF1':>7} {'IDsw':>5} {'prec':>7} {'recall':>7} {'GT':>6} {'FP':>5} {'FN':>5}"
    lines = [head]

    def row(name: str, r: dict) -> str:
        def pct(v):
            return "    n/a" if v != v else f"{100 * v:7.1f}"
        return (f"{name:>12} {pct(r['mota'])} {pct(r['idf1'])} {r['id_switches']:5d} {pct(r['precision'])} "
                f"{pct(r['recall'])} {r['num_objects']:6d} {r['num_false_positives']:5d} {r['num_misses']:5d}")

    if per_video:
        lines += [row(v, r) for v, r in result.per_video.items()]
    lines.append(row("OVERALL", result.overall))
    o = result.overall
    if o.get("videos"):
        lines.append(f"identities right in {100 * o['identities_right']:.1f}% of {o['videos']} videos (hand "
                     f"{100 * o['hand_right']:.1f}%, objects {100 * o['objects_right']:.1f}%; with the same slot "
                     f"ids {100 * o['same_slots']:.1f}%)")
    if result.missing:
        lines.append(f"no prediction for {len(result.missing)} video(s): {', '.join(result.missing[:10])}")
    if result.extra:
        lines.append(f"ignored {len(result.extra)} predicted video(s) without ground truth: {', '.join(result.extra[:10])}")
    return "\n".join(lines)
