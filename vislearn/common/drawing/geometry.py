"""Boxes and regions of interest of drawn shapes: the part of a shape inside the frame, the pixel window a
shape is drawn in, a segment clipped to a rectangle."""
from __future__ import annotations

import numpy as np


def clipped_box(x: np.ndarray, y: np.ndarray, W: int, H: int, pad: float = 0.0):
    """Box (x0,y0,x1,y1) of the part of a shape inside the frame, from dense points on its outline;
    None when no part is inside. Annotators box what is in view: a shape cut by the frame edge gets
    the extent of its visible part, not its full extent clipped."""
    # the view as the pixels sample it: pixel centres run from 0.5 to W-0.5; a shape cut by that
    # window reaches the frame edge (0 or W), elsewhere its outline gives the extent
    lo, hx, hy = 0.5, W - 0.5, H - 0.5
    rows, cols = (y >= lo) & (y <= hy), (x >= lo) & (x <= hx)
    inside = rows & cols
    if not inside.any():
        return None
    xi, yi = x[inside], y[inside]
    x0, x1, y0, y1 = xi.min() - pad, xi.max() + pad, yi.min() - pad, yi.max() + pad
    if (rows & (x < lo)).any():
        x0 = 0.0
    if (rows & (x > hx)).any():
        x1 = float(W)
    if (cols & (y < lo)).any():
        y0 = 0.0
    if (cols & (y > hy)).any():
        y1 = float(H)
    return (float(min(max(x0, 0.0), W)), float(min(max(y0, 0.0), H)),
            float(min(max(x1, 0.0), W)), float(min(max(y1, 0.0), H)))


def union_box(boxes):
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    a = np.array(boxes)
    return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())


def capsule_outline(x0, y0, x1, y1, r):
    """Points every ~0.5 px on a capsule's outline (two circles and the lines joining them)."""
    n = max(32, int(np.ceil(2 * np.pi * r / 0.5)))
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cx, cy = np.cos(th) * r, np.sin(th) * r
    length = np.hypot(x1 - x0, y1 - y0)
    k = np.linspace(0, 1, max(2, int(np.ceil(length / 0.5)) + 1))
    d = np.array([x1 - x0, y1 - y0]) / max(length, 1e-9)
    nx, ny = -d[1] * r, d[0] * r
    xs = np.concatenate([x0 + cx, x1 + cx, x0 + (x1 - x0) * k + nx, x0 + (x1 - x0) * k - nx])
    ys = np.concatenate([y0 + cy, y1 + cy, y0 + (y1 - y0) * k + ny, y0 + (y1 - y0) * k - ny])
    return xs, ys


def in_window(box, W: int, H: int) -> bool:
    return box[0] >= 0.5 and box[1] >= 0.5 and box[2] <= W - 0.5 and box[3] <= H - 0.5



def clip_segment(a, b, x0, y0, x1, y1):
    """Liang-Barsky: the part of segment a-b inside the rectangle, or None."""
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return (a[0] + t0 * dx, a[1] + t0 * dy), (a[0] + t1 * dx, a[1] + t1 * dy)


def roi(x0, y0, x1, y1, W, H, pad=2.0):
    ix0, iy0 = max(0, int(np.floor(x0 - pad))), max(0, int(np.floor(y0 - pad)))
    ix1, iy1 = min(W, int(np.ceil(x1 + pad))), min(H, int(np.ceil(y1 + pad)))
    return ix0, iy0, ix1, iy1
