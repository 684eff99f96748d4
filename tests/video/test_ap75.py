"""AP at IoU 0.75 (`ap75`, `map75` of `box_ap`): the strict-localisation figure ReSim reports, on crafted boxes
whose IoU with the ground truth is known (0.8 counts at 0.75, 0.6 does not), checked against a hand count."""
import math

import numpy as np
import pytest

from vislearn.video.tracking.ap import box_ap
from vislearn.video.tracking.geometry import iou_matrix

GT = [[0, 0, 10, 10], [20, 20, 30, 30]]
AT_08 = [0, 0, 10, 8]     # IoU 80/100 with the first box
AT_06 = [20, 20, 30, 26]  # IoU 60/100 with the second


def frame(boxes, scores, labels):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float),
            "labels": np.array(labels)}


def test_crafted_boxes_have_the_ious_the_test_relies_on():
    iou = iou_matrix(np.array([AT_08, AT_06], float), np.array(GT, float))
    assert iou[0, 0] == pytest.approx(0.8) and iou[1, 1] == pytest.approx(0.6)


def test_iou_08_counts_at_075_and_iou_06_does_not():
    # hand: the IoU-0.8 box (score 0.9) and the IoU-0.6 box (score 0.8) over 2 ground-truth boxes.
    # At 0.5 both hit: AP50 = 1. At 0.75 by hand: 0.9 TP (recall 1/2, precision 1), 0.8 FP: AP75 = 1/2 * 1.
    # object: one ground-truth box found only at IoU 0.6, so AP50 = 1, AP75 = 0.
    preds = [frame([AT_08, AT_06, [0, 0, 10, 6]], [0.9, 0.8, 0.7], [0, 0, 1])]
    gts = [{"boxes": np.array(GT + [[0, 0, 10, 10]], float), "labels": np.array([0, 0, 1])}]
    r = box_ap(preds, gts)
    assert r["ap50"] == {"hand": 1.0, "object": 1.0}
    assert r["ap75"]["hand"] == pytest.approx(0.5)
    assert r["ap75"]["object"] == 0.0
    assert r["map75"] == pytest.approx(0.25)
    assert r["map50"] == 1.0


def test_ap75_is_the_075_term_of_the_coco_mean_and_nan_when_not_computed():
    # the IoU-0.8 box hits at thresholds 0.5..0.8 (7 of 10), so AP@[.5:.95] = 0.7 and AP75 = 1
    r = box_ap([frame([AT_08], [0.9], [0])], [{"boxes": np.array([GT[0]], float), "labels": np.array([0])}])
    assert r["ap75"]["hand"] == 1.0 and r["ap"]["hand"] == pytest.approx(0.7)
    assert math.isnan(r["ap75"]["object"])  # no ground truth of that class
    r = box_ap([frame([AT_08], [0.9], [0])], [{"boxes": np.array([GT[0]], float), "labels": np.array([0])}],
               iou_thresholds=(0.5,))
    assert math.isnan(r["ap75"]["hand"]) and math.isnan(r["map75"])
