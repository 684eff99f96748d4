"""Mask utilities against pycocotools (the reference RLE codec) and crafted shapes."""
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from vislearn.common.errors import UserError
from vislearn.segment.masks import (box_xyxy_to_xywh, check_rle, counts_from_string, interior_point, mask_iou,
                                    mask_to_box_xyxy, masks_iou, masks_to_boxes_xyxy, rle_area, rle_decode,
                                    rle_encode, segmentation_to_mask)


def random_masks(seed=0, n=60):
    rng = np.random.default_rng(seed)
    out = [np.zeros((7, 5), bool), np.ones((9, 13), bool), np.zeros((1, 1), bool), np.ones((1, 1), bool)]
    for _ in range(n):
        h, w = rng.integers(1, 48, 2)
        blobs = rng.random((h, w)) < rng.random()
        out.append(blobs)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        rect = np.zeros((h, w), bool)
        rect[y0:y0 + rng.integers(1, 30), x0:x0 + rng.integers(1, 30)] = True
        out.append(rect)
    return out


def test_rle_round_trip_and_pycocotools_agree():
    for m in random_masks():
        rle = rle_encode(m)
        assert isinstance(rle["counts"], str) and rle["size"] == list(m.shape)
        json.dumps(rle)
        assert np.array_equal(rle_decode(rle), m)
        ref = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        assert np.array_equal(ref, m)
        assert np.array_equal(rle_decode({**rle, "counts": rle["counts"].encode()}), m)  # bytes counts
        assert rle_area(rle) == int(m.sum()) == int(coco_mask.area({**rle, "counts": rle["counts"].encode()}))


def test_counts_parser_matches_column_major_runs():
    for m in random_masks(1, 20):
        flat = m.T.ravel().astype(np.int8)
        change = np.flatnonzero(np.diff(flat)) + 1
        edges = np.concatenate([[0], change, [flat.size]])
        runs = list(np.diff(edges))
        if flat[0]:
            runs = [0] + runs
        assert list(counts_from_string(rle_encode(m)["counts"])) == runs


def test_uncompressed_rle_and_polygons():
    m = np.zeros((5, 7), bool)
    m[1:3, 2:5] = True
    runs = [int(v) for v in counts_from_string(rle_encode(m)["counts"])]
    assert np.array_equal(rle_decode({"size": [5, 7], "counts": runs}), m)
    poly = segmentation_to_mask([[1, 1, 5, 1, 5, 4, 1, 4]], 6, 8)
    ref = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([[1, 1, 5, 1, 5, 4, 1, 4]], 6, 8))).astype(bool)
    assert np.array_equal(poly, ref) and poly.sum() > 0
    two = segmentation_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [5, 3, 7, 3, 7, 5, 5, 5]], 6, 8)
    assert two[:2, :2].all() and two[3:5, 5:7].all()


@pytest.mark.parametrize("bad", [
    {"size": [5, 7], "counts": "zzz"},  # characters outside the alphabet
    {"size": [5, 7], "counts": [7, 2, 3]},  # runs do not cover the image
    {"size": [5, 7], "counts": ";2300"},  # runs short of 35 pixels
    {"size": [2, 2], "counts": "<"},  # a run longer than the image: pycocotools would write past its buffer
    {"size": [5], "counts": ";230009"},
    {"counts": ";230009"},
    {"size": [5, 7], "counts": 12},
    {"size": [5, 7], "counts": [35.5]},
])
def test_bad_rle_is_refused(bad):
    with pytest.raises(ValueError):
        rle_decode(bad)


def test_segmentation_size_mismatch_and_bad_polygon():
    rle = rle_encode(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="not the image size"):
        segmentation_to_mask(rle, 5, 4)
    with pytest.raises(ValueError):
        segmentation_to_mask([[1, 2, 3, 4]], 5, 5)
    with pytest.raises(ValueError):
        segmentation_to_mask([], 5, 5)
    assert check_rle(rle)["counts"] == rle["counts"]


def test_boxes_match_torchvision_and_are_inclusive():
    from torchvision.ops import masks_to_boxes

    rng = np.random.default_rng(3)
    batch = torch.from_numpy(rng.random((20, 11, 17)) < 0.05)
    batch[3] = False
    boxes = masks_to_boxes_xyxy(batch)
    assert boxes.shape == (20, 4) and boxes.dtype == torch.float32
    assert torch.equal(boxes[3], torch.zeros(4))
    nonempty = batch.flatten(1).any(1)
    assert torch.equal(boxes[nonempty], masks_to_boxes(batch[nonempty]).float())
    for k in range(20):
        assert np.array_equal(mask_to_box_xyxy(batch[k].numpy()), boxes[k].numpy())
    one = np.zeros((5, 6), bool)
    one[2, 3] = True
    assert mask_to_box_xyxy(one).tolist() == [3, 2, 3, 2]
    assert masks_to_boxes_xyxy(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)
    assert box_xyxy_to_xywh([1, 2, 4, 8]) == [1, 2, 3, 6]
    assert box_xyxy_to_xywh(torch.tensor([[1., 2., 4., 8.]])).tolist() == [[1, 2, 3, 6]]
    assert box_xyxy_to_xywh(np.array([1., 2., 4., 8.])).tolist() == [1, 2, 3, 6]


def test_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 2:7] = True
    assert mask_iou(a, b) == pytest.approx(30 / 70)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert mask_iou(a, ~a) == 0.0
    pred = torch.from_numpy(np.stack([a, a, np.zeros_like(a)]))
    gt = torch.from_numpy(np.stack([b, a, np.zeros_like(a)]))
    got = masks_iou(pred, gt)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx([30 / 70, 1.0, 1.0])
    assert masks_iou(pred.numpy(), gt.numpy()).tolist() == pytest.approx([30 / 70, 1.0, 1.0])


def test_interior_point():
    sq = np.zeros((21, 31), bool)
    sq[5:16, 10:21] = True  # 11x11 square, centre (15, 10)
    assert interior_point(sq) == (15, 10)
    # the image border is a boundary: a full image's point is its centre, not a corner
    assert interior_point(np.ones((9, 9), bool)) == (4, 4)
    # ties -> the first pixel in row-major order: a 2x2 block's top-left pixel
    blk = np.zeros((6, 6), bool)
    blk[2:4, 2:4] = True
    assert interior_point(blk) == (2, 2)
    # an L shape: its centroid lies outside; the point lies inside, in the thick corner
    el = np.zeros((40, 40), bool)
    el[5:35, 5:15] = True
    el[25:35, 5:35] = True
    x, y = interior_point(el)
    assert el[y, x]
    cy, cx = np.argwhere(el).mean(0)
    assert not el[int(round(cy)), int(round(cx))]
    with pytest.raises(UserError):
        interior_point(np.zeros((4, 4), bool))


def test_interior_point_equals_the_full_image_distance_transform():
    from scipy.ndimage import distance_transform_edt

    for m in random_masks(4, 30):
        if not m.any():
            continue
        dist = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        assert interior_point(m) == (x, y)
