"""Pictures of masks: coloured, see-through masks with outlines over the image, prompts marked; mask PNGs.

Masks are drawn largest first, so a small mask inside a large one stays visible; each gets a colour of its own
(hues a golden-ratio step apart: neighbours in the list never look alike) and a one-pixel outline in the same
colour at full strength. Foreground points are green dots, background points red, both ringed in white; boxes
are yellow rectangles. Files are written atomically (`vislearn.common.files.atomic_path`).
"""
from __future__ import annotations

import colorsys
import os

import numpy as np
from PIL import Image, ImageDraw

from vislearn.common.files import save_png  # noqa: F401 - segment modules import it from here

GOLDEN = 0.618033988749895
POINT_COLOURS = {1: (40, 220, 60), 0: (230, 40, 40)}  # foreground, background
BOX_COLOUR = (255, 215, 0)


def colours(n: int) -> np.ndarray:
    """`n` distinct bright colours, uint8 [n, 3], the same for the same `n` every time."""
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb((0.05 + GOLDEN * i) % 1.0, 0.75, 0.95)]
                     for i in range(n)], dtype=np.uint8).reshape(n, 3)


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary pixels (inside the mask, with a 4-neighbour outside it or at the image's edge)."""
    m = np.asarray(mask, bool)
    inner = np.zeros_like(m)
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m & ~inner


def draw_overlay(image: np.ndarray, masks, points=None, labels=None, boxes=None, alpha: float = 0.45) -> np.ndarray:
    """The image (uint8 HxWx3) with `masks` (bool HxW each) tinted and outlined, `points` [N, 2] (x, y) with
    `labels` [N] (1 foreground, 0 background) and `boxes` [M, 4] (x1, y1, x2, y2) marked."""
    out = np.asarray(image, dtype=np.float32).copy()
    masks = [np.asarray(m, bool) for m in masks]
    palette = colours(len(masks)).astype(np.float32)
    for i in sorted(range(len(masks)), key=lambda k: -int(masks[k].sum())):
        m = masks[i]
        out[m] = (1 - alpha) * out[m] + alpha * palette[i]
        out[outline(m)] = palette[i]
    pil = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    h, w = out.shape[:2]
    width = max(1, round(min(h, w) / 200))
    for box in ([] if boxes is None else np.asarray(boxes, float).reshape(-1, 4)):
        draw.rectangle([float(v) for v in box], outline=BOX_COLOUR, width=width)
    if points is not None:
        pts = np.asarray(points, float).reshape(-1, 2)
        labs = np.ones(len(pts), int) if labels is None else np.asarray(labels).reshape(-1).astype(int)
        r = max(2, round(min(h, w) / 80))
        for (x, y), lab in zip(pts, labs):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=POINT_COLOURS.get(int(lab), POINT_COLOURS[1]),
                         outline=(255, 255, 255), width=max(1, r // 3))
    return np.asarray(pil)


def save_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """A bool mask as a grey PNG: 255 inside, 0 outside."""
    save_png(path, np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8))
