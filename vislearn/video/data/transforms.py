"""Spatial transforms that move frames and boxes together.

A transform is split in two so that a coordinate-only pipeline never needs pixels:
  1. `view = transform(frame_size, rng)` picks the geometry from the frame size (w, h) alone: a
     `View` = a region of the source frame (source pixels) shown as an out_w x out_h image.
     Resize-then-crop pipelines are folded into one region of the source frame, so the crop is
     done once on the original pixels and then resized (better quality, exact box mapping).
  2. `frames_to_view(frames, view)` crops/resizes pixels; `boxes_to_view(xyxy, view)` maps pixel
     boxes (x1, y1, x2, y2) of the source frame to (cx, cy, w, h) normalised to the view, in
     [0, 1]. Boxes are clipped to the view; a box with no area left inside it is empty
     (all zeros, valid=False) and the caller masks it.

Available: `Resize` (short side), `FullFrame` (whole frame, stretched to a square: normalise boxes
by the frame), `CenterCrop`, `MultiScaleCrop` (the official TSN/Something-Else training crop:
scales (1, .875, .75, .66) of the short side, a corner/centre/quarter offset, resized to the
output size), `NCrop` (left/centre/right along the long side, for multi-view testing).
Unlike the official loader, which first stretched every frame to 340x256 (4:3) before cropping,
the short side is resized keeping the aspect ratio, so objects keep their shape.
No horizontal flip by default: SSv2 labels say left and right. `HorizontalFlip` exists for those
who want it and swaps labels by class NAME (e.g. "... from left to right" <-> "... from right to
left"); classes that mention left/right but have no partner are never flipped. Time is never
reversed here or anywhere else.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class View:
    """Region [x0, x1) x [y0, y1) of the source frame (pixels) shown as an out_w x out_h image."""

    x0: int
    y0: int
    x1: int
    y1: int
    out_w: int
    out_h: int
    flip: bool = False

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def default_resize(input_size: int) -> int:
    """Short side before cropping: 256 for 224, 128 for 112 (the usual 256/224 ratio)."""
    return int(round(input_size * 256 / 224))


def _region(frame_size: tuple[int, int], scale: float, ox: float, oy: float, cw: float, ch: float) -> tuple[int, int, int, int]:
    """A crop (ox, oy, cw, ch) of the frame resized by `scale`, in source pixels (clamped, >= 1 px)."""
    w, h = frame_size
    x0 = min(max(0, int(round(ox / scale))), w - 1)
    y0 = min(max(0, int(round(oy / scale))), h - 1)
    x1 = min(w, max(x0 + 1, int(round((ox + cw) / scale))))
    y1 = min(h, max(y0 + 1, int(round((oy + ch) / scale))))
    return x0, y0, x1, y1


def _check_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(frame_size[0]), int(frame_size[1])
    if w < 1 or h < 1:
        raise ValueError(f"frame size must be positive (w, h), got {frame_size}")
    return w, h


class Resize:
    """Whole frame, short side resized to `short_side` (aspect kept)."""

    def __init__(self, short_side: int):
        self.short_side = short_side

    def __call__(self, frame_size: tuple[int, int], rng: np.random.Generator | None = None) -> View:
        w, h = _check_size(frame_size)
        s = self.short_side / min(w, h)
        return View(0, 0, w, h, max(1, int(round(w * s))), max(1, int(round(h * s))))


class FullFrame:
    """Whole frame stretched to size x size: boxes are normalised by the frame itself."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, frame_size: tuple[int, int], rng: np.random.Generator | None = None) -> View:
        w, h = _check_size(frame_size)
        return View(0, 0, w, h, self.size, self.size)


class CenterCrop:
    """Resize the short side to `resize_to`, then take the centre size x size square."""

    def __init__(self, size: int, resize_to: int | None = None):
        self.size = size
        self.resize_to = resize_to or default_resize(size)

    def __call__(self, frame_size: tuple[int, int], rng: np.random.Generator | None = None) -> View:
        w, h = _check_size(frame_size)
        s = self.resize_to / min(w, h)
        c = min(self.size, self.resize_to)
        ox, oy = (w * s - c) / 2, (h * s - c) / 2
        return View(*_region((w, h), s, ox, oy, c, c), self.size, self.size)


class MultiScaleCrop:
    """The official training crop (TSN `GroupMultiScaleCrop`, used by Something-Else).

    After resizing the short side to `resize_to`, crop width and height are each one of
    `scales` x short side (at most `max_distort` scale steps apart, sizes within 3 px of the output
    snap to it), placed at one of 5 fixed offsets (corners, centre) or 13 with `more_fix_crop`
    (plus edge centres and quarter points), then resized to size x size. Without a generator
    (evaluation) it is the centre crop at the first scale.
    """

    def __init__(self, size: int, scales: Sequence[float] = (1, 0.875, 0.75, 0.66), max_distort: int = 1,
                 more_fix_crop: bool = True, resize_to: int | None = None):
        self.size = size
        self.scales = tuple(scales)
        self.max_distort = max_distort
        self.more_fix_crop = more_fix_crop
        self.resize_to = resize_to or default_resize(size)
        self._tables: dict[tuple[int, int], np.ndarray] = {}

    def crop_choices(self, frame_size: tuple[int, int]) -> tuple[float, list[tuple[int, int]]]:
        """Resize factor and the (crop_w, crop_h) pairs, in resized pixels."""
        w, h = _check_size(frame_size)
        s = self.resize_to / min(w, h)
        base = min(int(round(w * s)), int(round(h * s)))
        sizes = [int(base * x) for x in self.scales]
        sizes = [self.size if abs(x - self.size) < 3 else x for x in sizes]
        pairs = [(cw, ch) for i, ch in enumerate(sizes) for j, cw in enumerate(sizes) if abs(i - j) <= self.max_distort]
        return s, pairs

    def offsets(self, rw: int, rh: int, cw: int, ch: int) -> list[tuple[int, int]]:
        ws, hs = (rw - cw) // 4, (rh - ch) // 4
        out = [(0, 0), (2 * ws, 2 * hs), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs)]
        if self.more_fix_crop:
            out += [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
                    (ws, hs), (3 * ws, hs), (ws, 3 * hs), (3 * ws, 3 * hs)]
        return out

    def region_table(self, frame_size: tuple[int, int]) -> np.ndarray:
        """Every training crop of a frame of this size: int64 [crop sizes, offsets, 4] regions
        (x0, y0, x1, y1) in source pixels. A training crop is table[i, j] with i, then j, drawn
        uniformly; computed once per frame size (the coordinate loader draws whole batches from it)."""
        key = (int(frame_size[0]), int(frame_size[1]))
        table = self._tables.get(key)
        if table is None:
            w, h = _check_size(key)
            s, pairs = self.crop_choices((w, h))
            rw, rh = int(round(w * s)), int(round(h * s))
            rows = []
            for cw, ch in pairs:
                cw, ch = min(cw, rw), min(ch, rh)
                rows.append([_region((w, h), s, ox, oy, cw, ch) for ox, oy in self.offsets(rw, rh, cw, ch)])
            table = self._tables[key] = np.array(rows, dtype=np.int64)
        return table

    def __call__(self, frame_size: tuple[int, int], rng: np.random.Generator | None = None) -> View:
        w, h = _check_size(frame_size)
        if rng is None:
            s, _ = self.crop_choices((w, h))
            rw, rh = int(round(w * s)), int(round(h * s))
            cw = ch = min(int(min(rw, rh) * self.scales[0]), rw, rh)
            ox, oy = (rw - cw) // 2, (rh - ch) // 2
            return View(*_region((w, h), s, ox, oy, cw, ch), self.size, self.size)
        table = self.region_table((w, h))
        i = int(rng.integers(table.shape[0]))
        j = int(rng.integers(table.shape[1]))
        return View(*(int(v) for v in table[i, j]), self.size, self.size)


class NCrop:
    """`num_crops` size x size crops spread along the long side (3: left/centre/right, or
    top/centre/bottom for portrait videos) after resizing the short side to `resize_to`
    (default: `size`, so each crop spans the whole short side)."""

    def __init__(self, size: int, num_crops: int = 3, resize_to: int | None = None):
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.size = size
        self.num_crops = num_crops
        self.resize_to = resize_to or size

    def views(self, frame_size: tuple[int, int]) -> list[View]:
        w, h = _check_size(frame_size)
        s = self.resize_to / min(w, h)
        rw, rh = w * s, h * s
        c = min(self.size, self.resize_to)
        if self.num_crops == 1:
            positions = [0.5]
        else:
            positions = np.linspace(0, 1, self.num_crops).tolist()
        out = []
        for p in positions:
            ox, oy = (p * (rw - c), (rh - c) / 2) if rw >= rh else ((rw - c) / 2, p * (rh - c))
            out.append(View(*_region((w, h), s, ox, oy, c, c), self.size, self.size))
        return out

    def __call__(self, frame_size: tuple[int, int], rng: np.random.Generator | None = None, crop: int | None = None) -> View:
        views = self.views(frame_size)
        return views[len(views) // 2 if crop is None else crop]


_LEFT_RIGHT = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def left_right_swap(class_names: Sequence[str]) -> dict[str, str]:
    """Pairs of class names that differ by exchanging the words 'left' and 'right'."""
    names = set(class_names)
    swap = {}
    for name in class_names:
        if _LEFT_RIGHT.search(name):
            other = _LEFT_RIGHT.sub(lambda m: {"left": "right", "right": "left"}[m.group(1).lower()], name)
            if other in names and other != name:
                swap[name] = other
    return swap


class HorizontalFlip:
    """Mirror frames and boxes with probability `p`, swapping labels by class name.

    `swap` maps class name -> the class it becomes when mirrored (both directions must be listed,
    `left_right_swap` builds it). A class that mentions left or right but is not in `swap` is
    never flipped; every other class keeps its label.
    """

    def __init__(self, labels: Mapping[str, int], swap: Mapping[str, str], p: float = 0.5):
        self.p = p
        missing = [n for pair in swap.items() for n in pair if n not in labels]
        if missing:
            raise ValueError(f"flip swap names unknown classes: {missing[:3]}")
        for a, b in swap.items():
            if swap.get(b) != a:
                raise ValueError(f"flip swap must be symmetric: {a!r} -> {b!r} but {b!r} -> {swap.get(b)!r}")
        self.index_map = {labels[a]: labels[b] for a, b in swap.items()}
        self.never = {i for n, i in labels.items() if _LEFT_RIGHT.search(n) and n not in swap}

    def __call__(self, view: View, label: int, rng: np.random.Generator | None) -> tuple[View, int]:
        if rng is None or label in self.never or rng.random() >= self.p:
            return view, label
        return replace(view, flip=not view.flip), self.index_map.get(label, label)


def boxes_to_view(xyxy: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (x1, y1, x2, y2) boxes [..., 4] -> ((cx, cy, w, h) in [0, 1] of the view, valid [...]).

    Boxes are clipped to the view region; those with no area inside it get zeros and valid=False.
    """
    b = np.asarray(xyxy, dtype=np.float32)
    x1 = np.clip(b[..., 0], view.x0, view.x1)
    x2 = np.clip(b[..., 2], view.x0, view.x1)
    y1 = np.clip(b[..., 1], view.y0, view.y1)
    y2 = np.clip(b[..., 3], view.y0, view.y1)
    valid = (x2 > x1) & (y2 > y1)
    vw, vh = float(view.width), float(view.height)
    cx = ((x1 + x2) / 2 - view.x0) / vw
    if view.flip:
        cx = 1.0 - cx
    out = np.stack([cx, ((y1 + y2) / 2 - view.y0) / vh, (x2 - x1) / vw, (y2 - y1) / vh], axis=-1)
    out[~valid] = 0.0
    return out.astype(np.float32), valid


def boxes_from_view(cxcywh: np.ndarray, view: View) -> np.ndarray:
    """Inverse of `boxes_to_view` (for drawing predictions): normalised (cx, cy, w, h) -> source pixels xyxy."""
    b = np.asarray(cxcywh, dtype=np.float32)
    cx = 1.0 - b[..., 0] if view.flip else b[..., 0]
    vw, vh = float(view.width), float(view.height)
    x = view.x0 + cx * vw
    y = view.y0 + b[..., 1] * vh
    return np.stack([x - b[..., 2] * vw / 2, y - b[..., 3] * vh / 2, x + b[..., 2] * vw / 2, y + b[..., 3] * vh / 2], axis=-1)


def frames_to_view(frames: np.ndarray | torch.Tensor, view: View) -> torch.Tensor:
    """uint8 frames [T,H,W,3] -> float [T,3,out_h,out_w] in 0..255 (crop, then antialiased bilinear resize)."""
    t = torch.as_tensor(frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3], got {tuple(t.shape)}")
    h, w = t.shape[1:3]
    if view.x1 > w or view.y1 > h:
        raise ValueError(f"view {view} lies outside {w}x{h} frames")
    t = t[:, view.y0:view.y1, view.x0:view.x1].permute(0, 3, 1, 2).float()
    if t.shape[-2:] != (view.out_h, view.out_w):
        t = F.interpolate(t, size=(view.out_h, view.out_w), mode="bilinear", align_corners=False, antialias=True)
    if view.flip:
        t = t.flip(-1)
    return t


def normalize(frames: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """float [T,3,H,W] in 0..255 -> [3,T,H,W] scaled to 0..1 and standardised (torchvision video models)."""
    m = torch.tensor(mean, dtype=frames.dtype).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=frames.dtype).view(1, 3, 1, 1) * 255.0
    return ((frames - m) / s).permute(1, 0, 2, 3).contiguous()


def make_view_transform(train: bool, input_size: int, crop: str = "multiscale"):
    """The usual choice: multi-scale crop for training, centre crop for evaluation.

    crop: 'multiscale' (official), 'center' (same centre crop in training and evaluation),
    'full' (whole frame, e.g. box-only models that should see every box).
    """
    if crop not in ("multiscale", "center", "full"):
        raise ValueError(f"unknown crop {crop!r}: use 'multiscale', 'center' or 'full'")
    if crop == "full":
        return FullFrame(input_size)
    if crop == "center" or not train:
        return CenterCrop(input_size)
    return MultiScaleCrop(input_size)
