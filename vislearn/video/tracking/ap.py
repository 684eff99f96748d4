"""Box average precision (no pycocotools), per class, at one or more IoU thresholds.

Matching per image and class, as COCO: detections in decreasing score order; each takes the
not-yet-matched ground-truth box it overlaps most, if that IoU >= the threshold (a true positive);
otherwise it is a false positive (so a duplicate detection of a found box is a false positive).
AP is the area under the precision-recall curve over all detections of all images, with
precision made monotone (the max precision at any higher recall):
- `method="all"` (default): exact area under that curve (VOC 2010+ "all points");
- `method="coco"`: mean of the monotone precision at the 101 recall points 0, 0.01, ..., 1.
A class with no ground-truth box has AP = NaN and is left out of the means.

Ignore regions (COCO's "ignore"/crowd boxes): a ground truth may list boxes that are neither to be
found nor to be avoided (the synthetic set's unannotated distractor objects). A detection of their
class that matches no ground-truth box but overlaps an ignore box by IoU >= the threshold is dropped
(neither a true nor a false positive). So AP with the distractors ignored counts only misses and
badly placed boxes; the gap to plain AP is what the distractors cost.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .detections import CLASSES
from .geometry import iou_matrix

COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


def match_detections(pred_boxes: np.ndarray, pred_scores: np.ndarray, gt_boxes: np.ndarray,
                     iou_threshold: float) -> np.ndarray:
    """True-positive flag for each prediction (in the input order), for one image and one class."""
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    tp = np.zeros(len(pred_boxes), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = iou_matrix(pred_boxes, gt_boxes)
    taken = np.zeros(iou.shape[1], dtype=bool)
    for i in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] >= iou_threshold:
            taken[j] = True
            tp[i] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int, method: str = "all") -> float:
    """AP from all detections' scores and true-positive flags, and the number of ground-truth boxes."""
    if num_gt <= 0:
        return math.nan
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / num_gt
    precision = ctp / (ctp + cfp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at this or higher recall
    if method == "all":
        prev = np.concatenate([[0.0], recall[:-1]])
        return float(np.sum((recall - prev) * envelope))
    if method == "coco":
        points = np.linspace(0.0, 1.0, 101)
        idx = np.searchsorted(recall, points, side="left")
        values = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
        return float(np.mean(values))
    raise ValueError(f"unknown AP method {method!r} (all, coco)")


def box_ap(predictions: Sequence[dict], ground_truths: Sequence[dict], classes: Sequence[str] = CLASSES,
           iou_thresholds: Sequence[float] = COCO_THRESHOLDS, method: str = "all") -> dict:
    """AP over a set of images.

    predictions[i]: {"boxes": [k,4] xyxy, "scores": [k], "labels": [k] class index 0..C-1}
    ground_truths[i]: {"boxes": [n,4], "labels": [n]}  (same images, same order), optionally
        "ignore_boxes": [m,4], "ignore_labels": [m] (regions to ignore, see the module's docstring)
    Returns {"ap50": {class: AP}, "ap75": {class: AP}, "ap": {class: AP averaged over the thresholds}, "map50",
    "map75", "map", "num_gt": {class: n}, "images": N}. AP75 (strict localisation: ReSim's and COCO's AP75) and
    AP50 are NaN when their threshold is not among `iou_thresholds`.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} ground-truth images")
    out: dict = {"ap50": {}, "ap75": {}, "ap": {}, "num_gt": {}, "images": len(predictions)}
    for c, name in enumerate(classes):
        per_thr = []
        num_gt = 0
        for g in ground_truths:
            num_gt += int(np.sum(np.asarray(g["labels"]) == c))
        for thr in iou_thresholds:
            scores, flags = [], []
            for p, g in zip(predictions, ground_truths):
                pm = np.asarray(p["labels"]) == c
                gm = np.asarray(g["labels"]) == c
                pb = np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4)[pm]
                ps = np.asarray(p["scores"], dtype=np.float64).reshape(-1)[pm]
                gb = np.asarray(g["boxes"], dtype=np.float64).reshape(-1, 4)[gm]
                tp = match_detections(pb, ps, gb, thr)
                keep = ~_ignored(pb, tp, g, c, thr)
                scores.append(ps[keep])
                flags.append(tp[keep])
            per_thr.append(average_precision(np.concatenate(scores) if scores else np.zeros(0),
                                              np.concatenate(flags) if flags else np.zeros(0, bool), num_gt, method))
        out["num_gt"][name] = num_gt
        out["ap50"][name] = _at(per_thr, iou_thresholds, 0.5)
        out["ap75"][name] = _at(per_thr, iou_thresholds, 0.75)
        out["ap"][name] = float(np.mean(per_thr)) if per_thr and not math.isnan(per_thr[0]) else math.nan
    out["map50"] = _nanmean(out["ap50"].values())
    out["map75"] = _nanmean(out["ap75"].values())
    out["map"] = _nanmean(out["ap"].values())
    return out


def _at(per_thr: list[float], thresholds: Sequence[float], thr: float) -> float:
    """The AP at IoU threshold `thr` (NaN when it was not computed)."""
    hits = [i for i, t in enumerate(thresholds) if abs(t - thr) < 1e-9]
    return per_thr[hits[0]] if hits else math.nan


def _ignored(pred_boxes: np.ndarray, tp: np.ndarray, gt: dict, cls: int, thr: float) -> np.ndarray:
    """Which unmatched predictions fall on an ignore region of their class."""
    out = np.zeros(len(pred_boxes), dtype=bool)
    if "ignore_boxes" not in gt or len(pred_boxes) == 0:
        return out
    regions = np.asarray(gt["ignore_boxes"], dtype=np.float64).reshape(-1, 4)
    regions = regions[np.asarray(gt["ignore_labels"]).reshape(-1) == cls]
    if len(regions) == 0:
        return out
    return ~tp & (iou_matrix(pred_boxes, regions).max(axis=1) >= thr)


def _nanmean(values) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan
