"""Box AP on hand-made cases whose values are worked out by hand."""
import math

import numpy as np
import pytest

from vislearn.video.tracking.ap import average_precision, box_ap, match_detections

GT2 = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)


def img(boxes, scores, labels):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float), "labels": np.array(labels)}


def gt(boxes, labels):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels)}


def test_perfect_detections_give_ap_one():
    r = box_ap([img(GT2, [0.9, 0.8], [0, 0])], [gt(GT2, [0, 0])], iou_thresholds=(0.5,))
    assert r["ap50"]["hand"] == 1.0
    assert r["map50"] == 1.0  # "object" has no ground truth: NaN, left out of the mean
    assert math.isnan(r["ap50"]["object"])


def test_false_positive_between_true_positives():
    # scores 0.9 TP, 0.8 FP, 0.7 TP over 2 GT: recall .5 .5 1, precision 1 .5 2/3
    preds = [img([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 0])]
    r = box_ap(preds, [gt(GT2, [0, 0])], iou_thresholds=(0.5,))
    assert r["ap50"]["hand"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    r = box_ap(preds, [gt(GT2, [0, 0])], iou_thresholds=(0.5,), method="coco")
    # 101 recall points: 0..0.50 (51 points) at precision 1, 0.51..1.0 (50 points) at 2/3
    assert r["ap50"]["hand"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_duplicate_detection_is_a_false_positive():
    tp = match_detections(np.array([[0, 0, 10, 10], [0, 0, 10, 9]]), np.array([0.9, 0.8]), GT2[:1], 0.5)
    assert tp.tolist() == [True, False]
    # AP: recall 1 at the first detection already -> AP 1 whatever follows
    assert average_precision([0.9, 0.8], tp, 1) == 1.0
    # the duplicate scoring higher than the true box: order of matching follows the scores
    tp = match_detections(np.array([[0, 0, 10, 10], [0, 0, 10, 9]]), np.array([0.7, 0.8]), GT2[:1], 0.5)
    assert tp.tolist() == [False, True]


def test_missed_box_halves_ap_and_no_detection_gives_zero():
    r = box_ap([img([[0, 0, 10, 10]], [0.9], [1])], [gt(GT2, [1, 1])], iou_thresholds=(0.5,))
    assert r["ap50"]["object"] == pytest.approx(0.5)
    r = box_ap([img([], [], [])], [gt(GT2, [1, 1])], iou_thresholds=(0.5,))
    assert r["ap50"]["object"] == 0.0


def test_iou_threshold_and_class_matter():
    # IoU of [0,0,10,10] and [0,0,10,6] is 0.6: a hit at 0.5, a miss at 0.75
    pred = [img([[0, 0, 10, 6]], [0.9], [0])]
    ground = [gt([[0, 0, 10, 10]], [0])]
    r = box_ap(pred, ground, iou_thresholds=(0.5, 0.75))
    assert r["ap50"]["hand"] == 1.0 and r["ap"]["hand"] == pytest.approx(0.5)
    # the right box with the wrong class finds nothing
    r = box_ap([img([[0, 0, 10, 10]], [0.9], [1])], ground, iou_thresholds=(0.5,))
    assert r["ap50"]["hand"] == 0.0


def test_detections_pooled_over_images_by_score():
    # image A: a confident false positive; image B: a weaker true positive. One GT in all.
    preds = [img([[50, 50, 60, 60]], [0.9], [0]), img([[0, 0, 10, 10]], [0.5], [0])]
    gts = [gt([], []), gt([[0, 0, 10, 10]], [0])]
    assert box_ap(preds, gts, iou_thresholds=(0.5,))["ap50"]["hand"] == pytest.approx(0.5)
    preds[0]["scores"] = np.array([0.1])  # the false positive now ranks last: AP 1
    assert box_ap(preds, gts, iou_thresholds=(0.5,))["ap50"]["hand"] == 1.0


def test_greedy_match_takes_the_best_overlap():
    # one detection overlapping two GT boxes takes the one it overlaps most
    gts = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], float)
    tp = match_detections(np.array([[2, 0, 12, 10], [0, 0, 10, 10]]), np.array([0.9, 0.8]), gts, 0.5)
    assert tp.tolist() == [True, True]


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        box_ap([img([], [], [])], [])


def test_detections_on_ignore_regions_are_neither_right_nor_wrong():
    # object GT at GT2[0]; a distractor (ignore region) at D; detections: on the distractor (0.9),
    # on the object (0.8), elsewhere (0.7)
    D = [60, 60, 80, 80]
    preds = [img([D, GT2[0], [100, 100, 110, 110]], [0.9, 0.8, 0.7], [1, 1, 1])]
    plain = gt(GT2[:1], [1])
    with_ignore = {**plain, "ignore_boxes": np.array([D], float), "ignore_labels": np.array([1])}
    r = box_ap(preds, [plain], iou_thresholds=(0.5,))
    assert r["ap50"]["object"] == pytest.approx(0.5)  # FP first: precision 1/2 at recall 1
    r = box_ap(preds, [with_ignore], iou_thresholds=(0.5,))
    assert r["ap50"]["object"] == pytest.approx(1.0)  # the distractor hit is dropped, the far FP comes after
    # an ignore region of the other class, or one the detection does not overlap enough, changes nothing
    other = {**plain, "ignore_boxes": np.array([D], float), "ignore_labels": np.array([0])}
    assert box_ap(preds, [other], iou_thresholds=(0.5,))["ap50"]["object"] == pytest.approx(0.5)
    shifted = {**plain, "ignore_boxes": np.array([[70, 70, 90, 90]], float), "ignore_labels": np.array([1])}
    assert box_ap(preds, [shifted], iou_thresholds=(0.5,))["ap50"]["object"] == pytest.approx(0.5)
    # a detection that matches a ground-truth box stays a true positive even on an ignore region
    on_both = {**plain, "ignore_boxes": GT2[:1], "ignore_labels": np.array([1])}
    r = box_ap([img([GT2[0]], [0.9], [1])], [on_both], iou_thresholds=(0.5,))
    assert r["ap50"]["object"] == 1.0
