"""Automatic masks of a whole image (SAM's "segment everything"), the official algorithm:

1. crops: the whole image, then for crop layer i (1..crop_n_layers) a (2^i x 2^i) grid of overlapping crops;
2. each crop is embedded once and prompted with a regular point grid (points_per_side / downscale^i per side),
   `points_per_batch` single foreground points at a time, three masks per point (multimask);
3. per batch, masks are dropped when the predicted IoU is not above `pred_iou_thresh`, when the stability
   score (IoU of the logits thresholded at +offset and at -offset) is below `stability_score_thresh`, or when
   the box touches (within 20 px) an edge of the crop that is not an edge of the image (the object goes on
   outside the crop: a larger crop sees it whole);
4. box NMS inside each crop (scored by predicted IoU), then across crops scored by 1 / crop area (the mask
   from the smaller crop wins: it saw the object at a higher resolution);
5. optionally, islands and holes smaller than `min_mask_region_area` are removed (scipy.ndimage, 8-connected,
   where the official code needs OpenCV) and NMS runs again preferring the masks that did not change.

`generate(image)` returns SA-1B annotations (`id`, `segmentation`, `bbox` xywh, `area`, `predicted_iou`,
`stability_score`, `point_coords`, `crop_box` xywh), in the official order and with the official numbers.
The per-batch model call is `predict_batch`: tests replace it with crafted logits to check each filter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from itertools import product

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.ops import batched_nms

from vislearn.common.errors import UserError

from .masks import masks_to_boxes_xyxy, rle_area, rle_decode, rle_encode
from .predictor import SamPredictor

OUTPUT_MODES = ("coco_rle", "binary_mask", "uncompressed_rle")
EDGE_TOLERANCE = 20.0  # px: a box this close to a crop's inner edge is cut by the crop


# ----------------------------------------------------------------------------- grids and crops
def point_grid(n_per_side: int) -> np.ndarray:
    """n x n points (x, y) in [0, 1]^2 at the centres of an n x n tiling, row by row: [n*n, 2]."""
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1.0 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One grid per crop layer: layer i has int(n_per_side / downscale^i) points per side."""
    return [point_grid(int(n_per_side / downscale ** i)) for i in range(n_layers + 1)]


def crop_boxes(im_size: tuple[int, int], n_layers: int, overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes [x0, y0, x1, y1] and their layer: the whole image, then (2^i)^2 overlapping crops for
    layer i; neighbours overlap by `overlap_ratio` of the short side (scaled down as crops get smaller)."""
    h, w = im_size
    boxes, layers = [[0, 0, w, h]], [0]
    for layer in range(1, n_layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * min(h, w) * (2 / n))
        cw = int(math.ceil((overlap * (n - 1) + w) / n))
        ch = int(math.ceil((overlap * (n - 1) + h) / n))
        x0s = [int((cw - overlap) * i) for i in range(n)]
        y0s = [int((ch - overlap) * i) for i in range(n)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + cw, w), min(y0 + ch, h)])
            layers.append(layer)
    return boxes, layers


# ----------------------------------------------------------------------------- per-mask measures
def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks at `threshold + offset` and `threshold - offset` (the first lies inside the second)."""
    inner = (logits > threshold + offset).sum((-1, -2), dtype=torch.int32)
    outer = (logits > threshold - offset).sum((-1, -2), dtype=torch.int32)
    return inner / outer


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes [N, 4] (x0, y0, x1, y1, inclusive pixel indices, int64) of bool masks [N, H, W]; 0s when empty."""
    return masks_to_boxes_xyxy(masks).long()


def near_crop_edge(boxes: torch.Tensor, crop_box: list[int], image_box: list[int],
                   atol: float = EDGE_TOLERANCE) -> torch.Tensor:
    """[N] bool: a box (in crop coordinates) lies within `atol` of a side of the crop that is not a side of
    the image."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    image = torch.as_tensor(image_box, dtype=torch.float, device=boxes.device)
    boxes = (boxes + _offset(crop_box, boxes.device, 4)).float()
    at_crop = torch.isclose(boxes, crop[None], atol=atol, rtol=0)
    at_image = torch.isclose(boxes, image[None], atol=atol, rtol=0)
    return (at_crop & ~at_image).any(1)


def _offset(crop_box: list[int], device, n: int) -> torch.Tensor:
    x0, y0 = crop_box[:2]
    return torch.tensor([[x0, y0, x0, y0][:n]], device=device)


def xyxy_to_xywh(box) -> list:
    x0, y0, x1, y1 = (v.item() if hasattr(v, "item") else v for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def encode_masks(masks: torch.Tensor) -> list[dict]:
    """SA-1B RLEs (str counts) of bool masks [N, H, W]."""
    return [rle_encode(m) for m in masks.cpu().numpy()]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """{"size": [h, w], "counts": [int, ...]} in column-major order, starting with a run of 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes ("holes") or drop islands ("islands") smaller than `area_thresh` px (8-connected);
    the largest island is kept if all are small. Returns (mask, whether it changed)."""
    from scipy import ndimage

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode: expected holes or islands, got {mode!r}")
    holes = mode == "holes"
    working = mask != holes  # holes: the background's components; islands: the mask's
    labels, n = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    if holes:
        return np.isin(labels, [0] + small), True
    keep = [i for i in range(1, n + 1) if i not in set(small)] or [int(np.argmax(sizes)) + 1]
    return np.isin(labels, keep), True


# ----------------------------------------------------------------------------- candidate masks
@dataclass
class Candidates:
    """Masks in step with their measures: RLEs at the image's size, boxes xyxy (crop frame until the crop
    is done), predicted IoUs, stability scores, prompt points, and the crop each came from."""

    rles: list
    boxes: torch.Tensor
    iou_preds: torch.Tensor
    stability_score: torch.Tensor
    points: torch.Tensor
    crop_boxes: torch.Tensor

    def __len__(self) -> int:
        return len(self.rles)

    def take(self, keep: torch.Tensor) -> "Candidates":
        """The candidates at `keep` (a bool mask or indices, in that order)."""
        if keep.dtype == torch.bool:
            idx = keep.nonzero().flatten().tolist()
        else:
            idx = keep.tolist()
        keep = torch.as_tensor(keep)
        return Candidates(rles=[self.rles[i] for i in idx], **{
            f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name != "rles"})

    @staticmethod
    def cat(parts: list["Candidates"]) -> "Candidates":
        return Candidates(rles=[r for p in parts for r in p.rles], **{
            f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Candidates) if f.name != "rles"})

    @staticmethod
    def empty() -> "Candidates":
        return Candidates([], torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0), torch.zeros(0),
                          torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.int64))


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Indices kept by box NMS, highest score first (torchvision's batched_nms with one category)."""
    return batched_nms(boxes.float(), scores, torch.zeros(len(boxes), dtype=torch.int64), iou_thresh)


# ----------------------------------------------------------------------------- the generator
class AutomaticMaskGenerator:
    """Masks of a whole image from a point grid (see the module for the algorithm and the options)."""

    def __init__(self, model, points_per_side: int | None = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                 crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                 crop_n_points_downscale_factor: int = 1, point_grids: list[np.ndarray] | None = None,
                 min_mask_region_area: int = 0, output_mode: str = "coco_rle") -> None:
        if (points_per_side is None) == (point_grids is None):
            raise UserError("give exactly one of points_per_side and point_grids")
        if points_per_side is not None and points_per_side < 1:
            raise UserError(f"points_per_side: must be at least 1, got {points_per_side}")
        if points_per_batch < 1 or crop_n_layers < 0 or crop_n_points_downscale_factor < 1:
            raise UserError("points_per_batch and crop_n_points_downscale_factor must be >= 1, crop_n_layers >= 0")
        if output_mode not in OUTPUT_MODES:
            raise UserError(f"output_mode: expected one of {', '.join(OUTPUT_MODES)}, got {output_mode!r}")
        if point_grids is None:
            grids = layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
            if any(len(g) == 0 for g in grids):
                raise UserError(f"points_per_side {points_per_side} leaves no points in crop layer "
                                f"{crop_n_layers} (downscale factor {crop_n_points_downscale_factor})")
        else:
            grids = [np.asarray(g, dtype=float).reshape(-1, 2) for g in point_grids]
            if len(grids) < crop_n_layers + 1:
                raise UserError(f"point_grids: {len(grids)} grids for {crop_n_layers + 1} crop layers")
        self.point_grids = grids
        self.predictor = SamPredictor(model)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode

    @property
    def mask_threshold(self) -> float:
        return self.predictor.model.mask_threshold

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict]:
        """SA-1B annotations of an HxWx3 uint8 RGB image (see the module)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise UserError(f"image: expected an H x W x 3 uint8 array, got {image.dtype} {tuple(image.shape)}")
        cands = self.candidates(image)
        if self.min_mask_region_area > 0:
            cands = self.clean_small_regions(cands, self.min_mask_region_area,
                                             max(self.box_nms_thresh, self.crop_nms_thresh))
        return [self._annotation(cands, i) for i in range(len(cands))]

    def _annotation(self, c: Candidates, i: int) -> dict:
        rle = c.rles[i]
        if self.output_mode == "coco_rle":
            seg = {"size": list(rle["size"]), "counts": rle["counts"]}
        elif self.output_mode == "binary_mask":
            seg = rle_decode(rle)
        else:
            seg = uncompressed_rle(rle_decode(rle))
        return {"id": i, "segmentation": seg, "area": rle_area(rle), "bbox": xyxy_to_xywh(c.boxes[i]),
                "predicted_iou": c.iou_preds[i].item(), "point_coords": [c.points[i].tolist()],
                "stability_score": c.stability_score[i].item(), "crop_box": xyxy_to_xywh(c.crop_boxes[i])}

    def candidates(self, image: np.ndarray) -> Candidates:
        """Every crop's surviving masks, de-duplicated across crops (steps 1-4 of the module)."""
        size = image.shape[:2]
        boxes, layers = crop_boxes(size, self.crop_n_layers, self.crop_overlap_ratio)
        parts = [self.crop_candidates(image, box, layer) for box, layer in zip(boxes, layers)]
        cands = Candidates.cat(parts)
        if len(boxes) > 1:
            x0, y0, x1, y1 = cands.crop_boxes.unbind(1)
            scores = 1 / ((x1 - x0) * (y1 - y0))  # smaller crops first
            cands = cands.take(box_nms(cands.boxes, scores, self.crop_nms_thresh))
        return cands

    def crop_candidates(self, image: np.ndarray, crop_box: list[int], layer: int) -> Candidates:
        """The masks of one crop: the point grid in batches, filtered, then NMS inside the crop."""
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        crop_size = crop.shape[:2]
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array(crop_size)[None, ::-1]
        parts = []
        for i in range(0, len(points), self.points_per_batch):
            logits, iou, pts = self.predict_batch(points[i:i + self.points_per_batch], crop_size)
            parts.append(self.filter_batch(logits, iou, pts, crop_box, image.shape[:2]))
        self.predictor.reset_image()
        cands = Candidates.cat(parts) if parts else Candidates.empty()
        cands = cands.take(box_nms(cands.boxes, cands.iou_preds, self.box_nms_thresh))
        cands.boxes = cands.boxes + _offset(crop_box, cands.boxes.device, 4)
        cands.points = cands.points + _offset(crop_box, cands.points.device, 2)
        cands.crop_boxes = torch.tensor(crop_box, dtype=torch.int64).repeat(len(cands), 1)
        return cands

    def predict_batch(self, points: np.ndarray, crop_size: tuple[int, int]):
        """Mask logits [P*3, h, w] at the crop's size, predicted IoUs [P*3] and the points [P*3, 2] (float64,
        crop pixels) for P single foreground points (x, y) in crop pixels: three masks per point."""
        coords = torch.as_tensor(self.predictor.transform.apply_coords(points, crop_size), device=self.predictor.device)
        labels = torch.ones(len(coords), dtype=torch.int, device=coords.device)
        # float64 coordinates, as the official generator passes them (the prompt encoder normalises in float64)
        logits, iou, _ = self.predictor.predict_torch(coords[:, None], labels[:, None], multimask_output=True,
                                                      return_logits=True)
        k = logits.shape[1]
        return logits.flatten(0, 1), iou.flatten(0, 1), torch.as_tensor(np.repeat(points, k, axis=0))

    def filter_batch(self, logits: torch.Tensor, iou: torch.Tensor, points: torch.Tensor, crop_box: list[int],
                     image_size: tuple[int, int]) -> Candidates:
        """Step 3 of the module on one batch; the kept masks are run-length encoded at the image's size."""
        if self.pred_iou_thresh > 0.0:
            keep = iou > self.pred_iou_thresh
            logits, iou, points = logits[keep], iou[keep], points[keep]
        stability = stability_score(logits, self.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
            logits, iou, points, stability = logits[keep], iou[keep], points[keep], stability[keep]
        masks = logits > self.mask_threshold
        del logits
        boxes = mask_boxes(masks)
        h, w = image_size
        keep = ~near_crop_edge(boxes, crop_box, [0, 0, w, h])
        if not keep.all():
            masks, iou, points, stability, boxes = masks[keep], iou[keep], points[keep], stability[keep], boxes[keep]
        x0, y0, x1, y1 = crop_box
        if (x0, y0, x1, y1) != (0, 0, w, h):
            masks = F.pad(masks, (x0, w - x1, y0, h - y1), value=False)
        return Candidates(encode_masks(masks), boxes, iou, stability, points,
                          torch.zeros(len(boxes), 4, dtype=torch.int64))

    @staticmethod
    def clean_small_regions(cands: Candidates, min_area: int, nms_thresh: float) -> Candidates:
        """Step 5 of the module: small holes filled and small islands dropped; NMS then prefers the masks
        that did not change (a changed mask keeps its place only when no unchanged one overlaps it)."""
        if len(cands) == 0:
            return cands
        masks, unchanged = [], []
        for rle in cands.rles:
            m = rle_decode(rle)
            m, changed_holes = remove_small_regions(m, min_area, "holes")
            m, changed_islands = remove_small_regions(m, min_area, "islands")
            masks.append(torch.as_tensor(m))
            unchanged.append(float(not (changed_holes or changed_islands)))
        masks = torch.stack(masks)
        boxes = mask_boxes(masks)
        keep = box_nms(boxes, torch.as_tensor(unchanged), nms_thresh)
        cands = Candidates(list(cands.rles), cands.boxes.clone(), cands.iou_preds, cands.stability_score,
                           cands.points, cands.crop_boxes)
        for i in keep.tolist():
            if unchanged[i] == 0.0:
                cands.rles[i] = encode_masks(masks[i][None])[0]
                cands.boxes[i] = boxes[i]
        return cands.take(keep)
