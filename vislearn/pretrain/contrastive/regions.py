"""ReSim's region pairs: windows slid over the overlap of two views, each mapped into the other view through the
crop boxes, then pooled from both views' feature maps with torchvision's `roi_align` (the paper used PrRoIPool;
`roi_align` with `aligned=True` samples the same continuous coordinates).

Coordinates are continuous pixels (pixel i spans [i, i+1)). A view of `size` pixels made from source box
(x0, y0, x1, y1) maps view coordinate u to x0 + u * (x1 - x0) / size, mirrored first (u -> size - u) when the view
was flipped; `view_to_view` composes that with the inverse for the other view, so a window maps to exactly the same
source pixels (tested on crafted crops). Windows are laid on the query view's pixels over the overlap: the paper's
48 px at stride 32 (C4) and 32 px at stride 24 (C3) are for 224-px views and are scaled with the view size.
Rotated views are not mapped (ReSim uses no rotation).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import roi_align

from .views import View

PAPER_VIEW = 224
PAPER_WINDOWS = {"c4": (48.0, 32.0), "c3": (32.0, 24.0)}  # level -> (window, stride) in pixels of a 224-px view


def to_source(view: View, size: int, boxes: np.ndarray) -> np.ndarray:
    """Boxes [K,4] (x0,y0,x1,y1) in a view's pixels -> source pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    if view.flip:
        b[:, [0, 2]] = size - b[:, [2, 0]]
    x0, y0, x1, y1 = view.box
    sx, sy = (x1 - x0) / size, (y1 - y0) / size
    return np.stack([x0 + b[:, 0] * sx, y0 + b[:, 1] * sy, x0 + b[:, 2] * sx, y0 + b[:, 3] * sy], axis=1)


def from_source(view: View, size: int, boxes: np.ndarray) -> np.ndarray:
    """Boxes [K,4] in source pixels -> a view's pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = view.box
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    out = np.stack([(b[:, 0] - x0) * sx, (b[:, 1] - y0) * sy, (b[:, 2] - x0) * sx, (b[:, 3] - y0) * sy], axis=1)
    if view.flip:
        out[:, [0, 2]] = size - out[:, [2, 0]]
    return out


def view_to_view(a: View, b: View, size: int, boxes: np.ndarray) -> np.ndarray:
    return from_source(b, size, to_source(a, size, boxes))


def overlap_in_view(a: View, b: View, size: int) -> tuple[float, float, float, float] | None:
    """The part of view `a` that view `b` also shows, in `a`'s pixels (None when they do not overlap)."""
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x1 <= x0 or y1 <= y0:
        return None
    box = from_source(a, size, np.array([[x0, y0, x1, y1]]))[0]
    return tuple(float(v) for v in np.clip(box, 0, size))


def windows(a: View, b: View, size: int, window: float, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows of `window` x `window` pixels at `stride` over the overlap of views a and b, in a's pixels, and
    the same windows in b's pixels: ([K,4], [K,4]); K = 0 when the overlap is smaller than a window."""
    region = overlap_in_view(a, b, size)
    if region is None:
        return np.zeros((0, 4)), np.zeros((0, 4))
    x0, y0, x1, y1 = region
    xs = x0 + stride * np.arange(max(0, int(np.floor((x1 - x0 - window) / stride)) + 1))
    ys = y0 + stride * np.arange(max(0, int(np.floor((y1 - y0 - window) / stride)) + 1))
    if x1 - x0 < window or y1 - y0 < window:
        return np.zeros((0, 4)), np.zeros((0, 4))
    gx, gy = np.meshgrid(xs, ys)
    wa = np.stack([gx.ravel(), gy.ravel(), gx.ravel() + window, gy.ravel() + window], axis=1)
    return wa, view_to_view(a, b, size, wa)


def scaled_windows(size: int) -> dict[str, tuple[float, float]]:
    """The paper's windows for 224-px views, scaled to `size`-px views."""
    s = size / PAPER_VIEW
    return {level: (w * s, st * s) for level, (w, st) in PAPER_WINDOWS.items()}


def region_pairs(queries: list[View], keys: list[View], size: int, window: float, stride: float,
                 max_per_image: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """roi_align boxes [K,5] (image index, x0, y0, x1, y1) for the query views and the matching ones for the key
    views, at most `max_per_image` windows per image (a random subset, from `rng`)."""
    qs, ks = [], []
    for i, (q, k) in enumerate(zip(queries, keys)):
        wq, wk = windows(q, k, size, window, stride)
        if len(wq) > max_per_image:
            pick = np.sort(rng.choice(len(wq), max_per_image, replace=False))
            wq, wk = wq[pick], wk[pick]
        idx = np.full((len(wq), 1), i, np.float64)
        qs.append(np.concatenate([idx, wq], axis=1))
        ks.append(np.concatenate([idx, wk], axis=1))
    q = np.concatenate(qs) if qs else np.zeros((0, 5))
    k = np.concatenate(ks) if ks else np.zeros((0, 5))
    return torch.as_tensor(q, dtype=torch.float32), torch.as_tensor(k, dtype=torch.float32)


def pool_regions(feature_map: torch.Tensor, boxes: torch.Tensor, size: int, output: int = 2) -> torch.Tensor:
    """Mean of a `output` x `output` roi_align grid (2 samples per bin) of each box: [K, C]."""
    scale = feature_map.shape[-1] / size
    pooled = roi_align(feature_map, boxes.to(feature_map.dtype), output_size=output, spatial_scale=scale,
                       sampling_ratio=2, aligned=True)
    return pooled.mean(dim=(2, 3))
