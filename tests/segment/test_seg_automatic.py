"""The automatic mask generator: equal to the official `SamAutomaticMaskGenerator` (same masks, boxes, points,
crops and order) on a tiny model and on crafted, localised mask logits (with crop layers and small-region
clean-up), and each filter on crafted masks removes exactly the masks it should."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from vislearn.segment.automatic import AutomaticMaskGenerator, crop_boxes, remove_small_regions
from vislearn.segment.masks import rle_decode
from vislearn.segment.model.build import load_sam

segment_anything = pytest.importorskip("segment_anything")
from segment_anything import SamAutomaticMaskGenerator  # noqa: E402
from official_sam import TINY, official_model  # noqa: E402
from segment_anything.utils.amg import generate_crop_boxes  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    official = official_model(TINY, decoder_gain=3.0, hyper_gain=30.0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(official.state_dict(), path)
    return official, load_sam(path)[0]


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    img[20:60, 30:90] = (200, 30, 30)
    return img


def assert_same(theirs: list[dict], ours: list[dict], tol: float = 0.0):
    assert len(ours) == len(theirs)
    for a, b in zip(theirs, ours):
        assert b["segmentation"] == a["segmentation"]
        for key in ("bbox", "area", "point_coords", "crop_box"):
            assert b[key] == a[key], key
        for key in ("predicted_iou", "stability_score"):
            assert abs(b[key] - a[key]) <= tol * max(1.0, abs(a[key])), key


def test_crop_boxes_equal_official():
    for size in [(96, 128), (1500, 2250), (77, 41)]:
        for layers in range(3):
            assert crop_boxes(size, layers, 512 / 1500) == generate_crop_boxes(size, layers, 512 / 1500)


@pytest.mark.parametrize("options", [
    dict(points_per_side=8, pred_iou_thresh=-1.0, stability_score_thresh=0.0),
    dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.8),
    dict(points_per_side=4, crop_n_layers=1, pred_iou_thresh=-1.0, stability_score_thresh=0.5, points_per_batch=5),
])
def test_equals_official_generator_on_a_model(models, image, options):
    official, ours = models
    theirs = SamAutomaticMaskGenerator(official, output_mode="coco_rle", **options).generate(image)
    assert len(theirs) >= 1
    # the same model: bit for bit
    assert_same(theirs, AutomaticMaskGenerator(official, **options).generate(image))
    # our model with the official weights (float rounding differs in the last bits)
    assert_same(theirs, AutomaticMaskGenerator(ours, **options).generate(image), tol=1e-4)


# ----------------------------------------------------------------------------- crafted, localised masks
def crafted_predict_torch(predictor):
    """Three disks (radii 5, 11, 19 px) around each prompt point, edges roughened by a texture (so stability
    varies and small islands and holes appear), and a predicted IoU that varies with the point."""
    def predict_torch(point_coords, point_labels, boxes=None, mask_input=None, multimask_output=True,
                      return_logits=False):
        h, w = predictor.original_size
        ih, iw = predictor.input_size
        p = point_coords[:, 0].double() * torch.tensor([w / iw, h / ih], dtype=torch.float64)
        ys = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
        xs = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
        d = ((xs - p[:, 0, None, None]) ** 2 + (ys - p[:, 1, None, None]) ** 2).sqrt()
        texture = 2.5 * torch.sin(0.9 * xs) * torch.sin(1.1 * ys)
        radii = torch.tensor([5.0, 11.0, 19.0], dtype=torch.float64)
        logits = ((radii[None, :, None, None] - d[:, None]) * 1.5 + texture).float()
        iou = (0.6 + 0.4 * torch.sin(p[:, :1] * 0.21 + p[:, 1:] * 0.13 + torch.arange(3))).float()
        masks = logits if return_logits else logits > 0
        return masks, iou, torch.zeros(len(p), 3, 16, 16)
    return predict_torch


@pytest.fixture
def fake_cv2(monkeypatch):
    """OpenCV's connectedComponentsWithStats (the official small-region clean-up needs it; cv2 is not installed)."""
    from scipy import ndimage

    def connected(img, connectivity):
        labels, n = ndimage.label(img, structure=np.ones((3, 3)) if connectivity == 8 else None)
        stats = np.zeros((n + 1, 5), np.int32)
        stats[:, 4] = np.bincount(labels.ravel(), minlength=n + 1)
        return n + 1, labels.astype(np.int32), stats, np.zeros((n + 1, 2))

    monkeypatch.setitem(sys.modules, "cv2", types.SimpleNamespace(connectedComponentsWithStats=connected))


@pytest.mark.parametrize("options", [
    dict(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.6),
    dict(points_per_side=8, crop_n_layers=1, pred_iou_thresh=0.3, stability_score_thresh=0.5),
    dict(points_per_side=6, crop_n_layers=2, crop_n_points_downscale_factor=2, pred_iou_thresh=0.3,
         stability_score_thresh=0.5, min_mask_region_area=8),
])
def test_equals_official_generator_on_crafted_masks(models, fake_cv2, options):
    official, _ = models
    img = np.zeros((120, 160, 3), np.uint8)
    theirs_gen = SamAutomaticMaskGenerator(official, output_mode="coco_rle", **options)
    ours_gen = AutomaticMaskGenerator(official, **options)
    theirs_gen.predictor.predict_torch = crafted_predict_torch(theirs_gen.predictor)
    ours_gen.predictor.predict_torch = crafted_predict_torch(ours_gen.predictor)
    theirs, ours = theirs_gen.generate(img), ours_gen.generate(img)
    assert len(theirs) >= 5
    assert_same(theirs, ours)
    if options.get("crop_n_layers"):
        assert len({tuple(a["crop_box"]) for a in ours}) > 1  # masks from the crops survive too
    assert [a["id"] for a in ours] == list(range(len(ours)))


def test_output_modes(models):
    official, _ = models
    img = np.zeros((60, 80, 3), np.uint8)
    outs = {}
    for mode in ("coco_rle", "binary_mask", "uncompressed_rle"):
        g = AutomaticMaskGenerator(official, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.5,
                                   output_mode=mode)
        g.predictor.predict_torch = crafted_predict_torch(g.predictor)
        outs[mode] = g.generate(img)
    assert len(outs["coco_rle"]) >= 2
    for a, b, c in zip(outs["coco_rle"], outs["binary_mask"], outs["uncompressed_rle"]):
        m = rle_decode(a["segmentation"])
        assert b["segmentation"].dtype == bool and np.array_equal(b["segmentation"], m)
        fr = coco_mask.frPyObjects(c["segmentation"], *c["segmentation"]["size"])
        assert fr["counts"].decode() == a["segmentation"]["counts"]
        assert a["area"] == int(m.sum())


# ----------------------------------------------------------------------------- each filter on crafted masks
def disk(h, w, cx, cy, r, ring: float = 0.0):
    """Logits: +10 inside radius r, +0.5 in a ring out to r + ring, -10 outside."""
    ys, xs = np.mgrid[:h, :w] + 0.5
    d = np.hypot(xs - cx, ys - cy)
    return torch.as_tensor(np.where(d <= r, 10.0, np.where(d <= r + ring, 0.5, -10.0)), dtype=torch.float32)


def box_of(logits):
    ys, xs = np.nonzero(logits.numpy() > 0)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())]


class Crafted(AutomaticMaskGenerator):
    """The model's per-batch prediction replaced by given masks (per crop: `objects(crop_box)`)."""

    def __init__(self, model, objects, **options):
        super().__init__(model, points_per_side=1, **options)
        self.objects = objects

    def crop_candidates(self, image, crop_box, layer):
        self.crop = crop_box
        return super().crop_candidates(image, crop_box, layer)

    def predict_batch(self, points, crop_size):
        logits, ious = self.objects(self.crop)
        return logits, torch.tensor(ious, dtype=torch.float32), torch.zeros(len(ious), 2, dtype=torch.float64)


H, W = 64, 96
IMAGE = np.zeros((H, W, 3), np.uint8)
DISKS = [(15, 15, 6), (45, 15, 6), (75, 15, 6), (15, 45, 6)]


def test_iou_filter_keeps_exactly_the_masks_above_the_threshold(models):
    ious = [0.95, 0.5, 0.88, 0.89]  # 0.88 itself is not above 0.88
    g = Crafted(models[0], lambda crop: (torch.stack([disk(H, W, *d) for d in DISKS]), ious), pred_iou_thresh=0.88)
    out = g.generate(IMAGE)
    assert [round(a["predicted_iou"], 4) for a in out] == [0.95, 0.89]  # NMS order: highest first
    assert [a["bbox"] for a in out] == [box_of(disk(H, W, *DISKS[0])), box_of(disk(H, W, *DISKS[3]))]
    assert all(a["stability_score"] == 1.0 for a in out)


def test_stability_filter_keeps_exactly_the_stable_masks(models):
    masks = [disk(H, W, *DISKS[0]), disk(H, W, *DISKS[1], ring=4.0), disk(H, W, 70, 40, 15, ring=0.2)]
    g = Crafted(models[0], lambda crop: (torch.stack(masks), [0.9, 0.95, 0.92]), stability_score_thresh=0.95)
    out = g.generate(IMAGE)
    inner = [(m > 1.0).sum().item() for m in masks]
    outer = [(m > -1.0).sum().item() for m in masks]
    assert inner[1] / outer[1] < 0.95 <= inner[2] / outer[2] < 1.0  # the crafted rings straddle the threshold
    assert [round(a["predicted_iou"], 4) for a in out] == [0.92, 0.9]
    assert out[0]["stability_score"] == pytest.approx(inner[2] / outer[2])


def test_box_nms_drops_the_weaker_duplicate(models):
    a = disk(H, W, 30, 30, 12)
    b = disk(H, W, 31, 30, 12)  # box IoU with a: ~0.92
    c = disk(H, W, 75, 20, 6)
    d = disk(H, W, 45, 30, 12)  # box IoU with a: ~0.3
    g = Crafted(models[0], lambda crop: (torch.stack([a, b, c, d]), [0.9, 0.95, 0.91, 0.89]))
    out = g.generate(IMAGE)
    assert [round(x["predicted_iou"], 4) for x in out] == [0.95, 0.91, 0.89]  # a (0.9) goes, b wins
    assert out[0]["bbox"] == box_of(b)


def test_crop_edge_filter_and_smaller_crops_win(models):
    h, w = 120, 160  # crop layer 1: [0, 0, 100, 80], [0, 40, 100, 120], [60, 0, 160, 80], [60, 40, 160, 120]
    small = (18, 18, 10)  # near the image's corner, far from every crop's inner edges
    middle = (80, 60, 25)  # cut by every crop of layer 1

    def objects(crop):
        x0, y0, x1, y1 = crop
        ms = [disk(h, w, *o)[y0:y1, x0:x1] for o in (small, middle)]
        keep = [m for m in ms if (m > 0).any()]
        return torch.stack(keep), [0.9] * len(keep)

    assert crop_boxes((h, w), 1, 512 / 1500)[0][1:] == [[0, 0, 100, 80], [0, 40, 100, 120], [60, 0, 160, 80],
                                                         [60, 40, 160, 120]]
    g = Crafted(models[0], objects, crop_n_layers=1)
    out = g.generate(np.zeros((h, w, 3), np.uint8))
    assert [(a["bbox"], a["crop_box"]) for a in out] == [
        (box_of(disk(h, w, *small)), [0, 0, 100, 80]),  # the full image's copy lost to the smaller crop
        (box_of(disk(h, w, *middle)), [0, 0, 160, 120]),  # the crops' cut copies are gone
    ]
    whole = Crafted(models[0], objects, crop_n_layers=1, crop_nms_thresh=1.0).generate(np.zeros((h, w, 3), np.uint8))
    assert len(whole) == 3  # without the cross-crop NMS: both copies of the small disk, and one middle


def test_nothing_survives_is_an_empty_list(models):
    g = Crafted(models[0], lambda crop: (torch.stack([disk(H, W, *d) for d in DISKS]), [0.1] * 4), crop_n_layers=1)
    assert g.generate(IMAGE) == []


def test_remove_small_regions():
    m = np.zeros((20, 20), bool)
    m[2:12, 2:12] = True
    m[5, 5] = False  # a one-pixel hole
    m[16:18, 16:17] = True  # a two-pixel island
    filled, changed = remove_small_regions(m, 4, "holes")
    assert changed and filled[5, 5] and filled.sum() == m.sum() + 1
    cleaned, changed = remove_small_regions(filled, 4, "islands")
    assert changed and not cleaned[16:18, 16].any() and cleaned.sum() == 100
    assert remove_small_regions(cleaned, 4, "islands") == (cleaned, False)
    tiny = np.zeros((10, 10), bool)
    tiny[1, 1] = tiny[5:7, 5] = True  # every island small: the largest stays
    kept, _ = remove_small_regions(tiny, 4, "islands")
    assert kept.sum() == 2 and kept[5:7, 5].all()
