"""Binary masks: COCO / SA-1B run-length encoding, boxes, IoU and the evaluation point.

Masks are bool arrays [H, W] (numpy) or bool tensors [N, H, W] (torch). On disk a mask is SA-1B's (and COCO's)
compressed RLE: `{"size": [h, w], "counts": str}`, column-major runs, encoded by `pycocotools.mask`. The counts
string is checked before pycocotools decodes it: its C decoder writes past its buffer when the runs add up to more
than h*w, so a damaged file must stop here with a one-line error, not crash the process.

Boxes follow the official SAM code (`batched_mask_to_box`) and torchvision's `masks_to_boxes`: XYXY with the
last row/column *inclusive* (a one-pixel mask at (x, y) has the box [x, y, x, y]); SA-1B's `bbox` is its XYWH.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vislearn.common.errors import UserError

RLE = dict  # {"size": [h, w], "counts": str}


def _coco():
    from pycocotools import mask as coco_mask  # imported when used: listing commands stays light

    return coco_mask


# ----------------------------------------------------------------------------------------------------------- RLE
def rle_encode(mask: np.ndarray) -> RLE:
    """Compressed RLE of a bool mask [H, W], counts as str (JSON-ready), exactly what SA-1B stores."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode expects one mask [H, W], got shape {tuple(mask.shape)}")
    rle = _coco().encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def counts_from_string(counts: str | bytes) -> np.ndarray:
    """The run lengths (int64) of a compressed RLE counts string (pycocotools' `rleFrString`, vectorised):
    5 bits per character offset by 48, bit 0x20 continues a number, bit 0x10 of its last character is the
    sign; from the fourth run on, each number is a difference to the run two places before."""
    data = np.frombuffer(counts.encode("ascii") if isinstance(counts, str) else bytes(counts), np.uint8)
    if data.size == 0:
        return np.zeros(0, np.int64)
    c = data.astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63 or c[-1] & 0x20:
        raise ValueError("not an RLE counts string (characters outside '0'..'o', or a number cut short)")
    last = (c & 0x20) == 0  # the last character of each number
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)  # position inside its number
    if k.max() > 11:
        raise ValueError("not an RLE counts string (a number longer than 64 bits)")
    parts = (c & 0x1F) << (5 * k)
    x = np.add.reduceat(parts, starts)
    neg = (c[ends] & 0x10) != 0
    x = np.where(neg, x - (np.int64(1) << (5 * (k[ends] + 1))), x)
    runs = x.copy()
    odd = runs[1::2]
    odd[1:] = np.cumsum(odd)[1:]  # run 3 = x3 + run 1, run 5 = x5 + run 3, ...
    runs[1::2] = odd
    if runs.size > 2:
        even = runs[2::2]
        runs[2::2] = np.cumsum(even)  # run 4 = x4 + run 2, ...
    return runs


def check_rle(rle: Any) -> RLE:
    """`rle` as a valid compressed RLE (str counts): a compressed one is verified (runs >= 0, summing to h*w),
    an uncompressed one (`counts` a list, as COCO's iscrowd masks) is compressed. ValueError says what is wrong."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("a segmentation RLE needs 'size' and 'counts'")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise ValueError("uncompressed RLE counts must be whole numbers >= 0")
        if sum(int(v) for v in counts) != h * w:
            raise ValueError(f"RLE runs add up to {sum(int(v) for v in counts)} pixels, size {h}x{w} has {h * w}")
        out = _coco().frPyObjects({"size": [h, w], "counts": [int(v) for v in counts]}, h, w)
        return {"size": [h, w], "counts": out["counts"].decode("ascii")}
    if not isinstance(counts, (str, bytes)):
        raise ValueError(f"RLE counts must be a string or a list of numbers, got {type(counts).__name__}")
    runs = counts_from_string(counts)
    if runs.size and runs.min() < 0:
        raise ValueError("RLE has a negative run")
    if int(runs.sum()) != h * w:
        raise ValueError(f"RLE runs add up to {int(runs.sum())} pixels, size {h}x{w} has {h * w}")
    return {"size": [h, w], "counts": counts if isinstance(counts, str) else counts.decode("ascii")}


def rle_decode(rle: RLE) -> np.ndarray:
    """The bool mask [H, W] of a compressed (str or bytes counts) or uncompressed (list counts) RLE."""
    rle = check_rle(rle)
    h, w = rle["size"]
    if h * w == 0:
        return np.zeros((h, w), bool)
    return _decode({"size": [h, w], "counts": rle["counts"].encode("ascii")})


def _decode(rle: dict) -> np.ndarray:
    """pycocotools' decoder, without its numpy-2 DeprecationWarning (about `__array__(copy=...)`, once per call)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _coco().decode(rle).astype(bool)


def rle_area(rle: RLE) -> int:
    """Pixels in the mask, from the runs alone (no decoding)."""
    runs = counts_from_string(check_rle(rle)["counts"])
    return int(runs[1::2].sum())


def segmentation_to_rle(seg: Any, h: int, w: int) -> RLE:
    """A COCO `segmentation` (polygons, uncompressed or compressed RLE) as a compressed RLE of size (h, w),
    without decoding it to pixels. ValueError says what is wrong (a bad polygon or RLE, another size)."""
    if isinstance(seg, dict):
        rle = check_rle(seg)
        if tuple(rle["size"]) != (h, w):
            raise ValueError(f"mask size {rle['size'][0]}x{rle['size'][1]} is not the image size {h}x{w}")
        return rle
    if isinstance(seg, (list, tuple)):
        polys = []
        for p in seg:
            if not (isinstance(p, (list, tuple)) and len(p) >= 6 and len(p) % 2 == 0
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in p)):
                raise ValueError("a polygon must be a list of at least 3 (x, y) points as numbers")
            polys.append([float(v) for v in p])
        if not polys:
            raise ValueError("empty polygon list")
        if h * w == 0:
            return rle_encode(np.zeros((h, w), bool))
        coco = _coco()
        rle = coco.merge(coco.frPyObjects(polys, h, w))
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    raise ValueError(f"segmentation must be polygons or an RLE, got {type(seg).__name__}")


def segmentation_to_mask(seg: Any, h: int, w: int) -> np.ndarray:
    """A COCO `segmentation` as a bool mask [h, w]: polygons (a list of [x0, y0, x1, y1, ...], each >= 3
    points), an uncompressed RLE (iscrowd) or a compressed one. Its size must be (h, w)."""
    return rle_decode(segmentation_to_rle(seg, h, w))


# --------------------------------------------------------------------------------------------------------- boxes
def mask_to_box_xyxy(mask: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] (float32, inclusive) of a bool mask [H, W]; zeros for an empty mask."""
    mask = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def masks_to_boxes_xyxy(masks):
    """Boxes [N, 4] (float, inclusive XYXY) of bool masks [N, H, W] (torch); an empty mask gives zeros."""
    import torch

    masks = torch.as_tensor(masks).bool()
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.float32, device=masks.device)
    rows, cols = masks.any(2), masks.any(1)  # [N, H], [N, W]
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    big = max(h, w)
    y0 = torch.where(rows, ys, big).amin(1)
    y1 = torch.where(rows, ys, -1).amax(1)
    x0 = torch.where(cols, xs, big).amin(1)
    x1 = torch.where(cols, xs, -1).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(rows.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def box_xyxy_to_xywh(box):
    """XYXY -> XYWH (SA-1B's and COCO's `bbox`) for one box or [N, 4]; numpy, torch or a list."""
    if isinstance(box, (list, tuple)):
        x0, y0, x1, y1 = box
        return [x0, y0, x1 - x0, y1 - y0]
    out = box.clone() if hasattr(box, "clone") else np.array(box, copy=True)
    out[..., 2] = box[..., 2] - box[..., 0]
    out[..., 3] = box[..., 3] - box[..., 1]
    return out


# ----------------------------------------------------------------------------------------------------------- IoU
def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks [H, W]; 1.0 when both are empty (they agree)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def masks_iou(pred, gt):
    """IoU of each pair of masks [N, H, W] -> [N] (torch in, torch out; numpy in, numpy out); 1.0 where both
    are empty."""
    if isinstance(pred, np.ndarray) and isinstance(gt, np.ndarray):
        pred, gt = pred.astype(bool), gt.astype(bool)
        inter = (pred & gt).reshape(len(pred), -1).sum(1)
        union = (pred | gt).reshape(len(pred), -1).sum(1)
        return np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    import torch

    pred, gt = torch.as_tensor(pred).bool(), torch.as_tensor(gt).bool()
    inter = (pred & gt).flatten(1).sum(1)
    union = (pred | gt).flatten(1).sum(1)
    return torch.where(union == 0, torch.ones_like(union, dtype=torch.float32), inter.float() / union.clamp(min=1))


# ------------------------------------------------------------------------------------------------ interior point
def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from the mask's boundary: the paper's evaluation point (the maximum of
    the distance transform; the image border counts as boundary; ties -> the first pixel in row-major order).
    An empty mask has no such point: UserError."""
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"interior_point expects one mask [H, W], got shape {tuple(mask.shape)}")
    if not mask.any():
        raise UserError("interior_point: the mask is empty")
    # on the mask's box padded by one pixel: the same distances as on the whole padded image (every pixel
    # outside the box is farther than the ring of padding around it) at a fraction of the cost
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    dist = distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)  # row-major: the first of equal maxima
    return int(x + cols[0]), int(y + rows[0])
