"""A hand with its forearm and sleeve: a skin-coloured palm (an ellipse), four fingers and a thumb (capsules),
drawn as signed distances on the region of interest only, with the box of its visible palm and fingers
(not the forearm, as Something-Else annotators boxed hands)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .background import jitter_colour
from .geometry import capsule_outline, clip_segment, clipped_box, in_window, roi, union_box
from .objects import sd_capsule

F32 = np.float32
HAND_LAYER, ARM_LAYER = 250, 251  # the hand's and the forearm's values in an id buffer (objects use 1..249)


_SKIN = ((232, 190, 160), (215, 165, 130), (190, 140, 105), (160, 110, 80), (120, 80, 55), (90, 60, 45))
_SLEEVES = ((40, 40, 45), (30, 50, 110), (150, 30, 40), (200, 200, 200), (60, 100, 60), (120, 120, 125))


@dataclass
class HandLook:
    skin: np.ndarray
    sleeve: np.ndarray
    palm_a: float  # half length of the palm along the arm
    palm_b: float  # half width of the palm
    finger_len: float
    finger_r: float
    thumb_len: float
    thumb_r: float
    arm_r: float
    sleeve_from: float  # distance from the palm centre where the sleeve starts
    thumb_side: int  # +1 / -1: left or right hand

    @property
    def reach(self) -> float:
        return 0.55 * self.palm_a + self.finger_len + self.finger_r


def make_hand(rng: np.random.Generator, S: float) -> HandLook:
    """A skin-coloured hand with a forearm; sizes like SSv2 hands (a third of the frame height)."""
    k = rng.uniform(0.85, 1.2) * S
    return HandLook(
        skin=jitter_colour(rng, _SKIN[int(rng.integers(len(_SKIN)))], 0.06),
        sleeve=jitter_colour(rng, _SLEEVES[int(rng.integers(len(_SLEEVES)))]),
        palm_a=24 * k, palm_b=21 * k, finger_len=28 * k, finger_r=5.2 * k, thumb_len=22 * k, thumb_r=6.0 * k,
        arm_r=17 * k, sleeve_from=rng.uniform(60, 140) * k, thumb_side=1 if rng.random() < 0.5 else -1,
    )


def _hand_parts(h: HandLook, p: np.ndarray, d: np.ndarray, grip: float):
    """Capsules (x0, y0, x1, y1, r) for fingers and thumb; the palm is an ellipse around p along d."""
    n = np.array([-d[1], d[0]])
    caps = []
    length = h.finger_len * (1 - 0.55 * grip)  # closing the hand curls the fingers
    for off, spread in ((-0.62, -0.16), (-0.2, -0.05), (0.2, 0.05), (0.62, 0.16)):
        base = p + d * 0.5 * h.palm_a + n * off * h.palm_b
        ang = spread * (1 - 0.7 * grip)
        c, s = np.cos(ang), np.sin(ang)
        fd = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        L = length * (0.85 if abs(off) > 0.5 else 1.0)
        tip = base + fd * L
        caps.append((base[0], base[1], tip[0], tip[1], h.finger_r))
    side = h.thumb_side
    base = p + n * side * 0.65 * h.palm_b - d * 0.1 * h.palm_a
    ang = side * (1.05 - 0.55 * grip)
    c, s = np.cos(ang), np.sin(ang)
    td = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
    tip = base + td * h.thumb_len
    caps.append((base[0], base[1], tip[0], tip[1], h.thumb_r))
    return caps



def hand_box(h: HandLook, p, d, caps, W: int, H: int):
    """Box of the visible part of palm and fingers (each a convex piece: union of their boxes)."""
    full = _hand_extent(h, p, d, caps)
    if in_window(full, W, H):
        return full
    n = max(64, int(np.ceil(2 * np.pi * h.palm_a / 0.5)))
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ca, sb = np.cos(th) * h.palm_a, np.sin(th) * h.palm_b
    ex = p[0] + ca * d[0] - sb * d[1]
    ey = p[1] + ca * d[1] + sb * d[0]
    parts = [clipped_box(ex, ey, W, H)]
    for c in caps:
        cb = (min(c[0], c[2]) - c[4], min(c[1], c[3]) - c[4], max(c[0], c[2]) + c[4], max(c[1], c[3]) + c[4])
        parts.append(cb if in_window(cb, W, H) else clipped_box(*capsule_outline(*c), W, H))
    return union_box(parts)


def _hand_extent(h: HandLook, p, d, caps) -> tuple[float, float, float, float]:
    """Full (unclipped) bounding box of palm ellipse and finger capsules: the drawing region."""
    a, b = h.palm_a, h.palm_b
    ex = np.sqrt((a * d[0]) ** 2 + (b * d[1]) ** 2)
    ey = np.sqrt((a * d[1]) ** 2 + (b * d[0]) ** 2)
    x0, x1, y0, y1 = p[0] - ex, p[0] + ex, p[1] - ey, p[1] + ey
    for cx0, cy0, cx1, cy1, r in caps:
        x0, x1 = min(x0, cx0 - r, cx1 - r), max(x1, cx0 + r, cx1 + r)
        y0, y1 = min(y0, cy0 - r, cy1 - r), max(y1, cy0 + r, cy1 + r)
    return float(x0), float(y0), float(x1), float(y1)



def draw_hand(canvas, idbuf, h: HandLook, p, elbow, grip, masks: dict | None):
    """Forearm (with sleeve) then palm and fingers. Returns the box of the hand's part in view, or None."""
    H, W = idbuf.shape
    p = np.asarray(p, np.float64)
    d = p - elbow
    d = d / max(np.hypot(*d), 1e-9)
    caps = _hand_parts(h, p, d, grip)
    extent = _hand_extent(h, p, d, caps)
    # forearm: from just behind the palm to the elbow outside the frame
    a0 = p - d * 0.3 * h.palm_a
    r = h.arm_r * 1.2
    seg = clip_segment(a0, elbow, -r, -r, W + r, H + r)  # only the part of the arm that can show
    if seg is not None:
        (sx0, sy0), (sx1, sy1) = seg
        ax0, ay0, ax1, ay1 = roi(min(sx0, sx1) - r, min(sy0, sy1) - r, max(sx0, sx1) + r, max(sy0, sy1) + r, W, H)
    if seg is not None and ax0 < ax1 and ay0 < ay1:
        X = np.arange(ax0, ax1, dtype=F32)[None, :] + 0.5
        Y = np.arange(ay0, ay1, dtype=F32)[:, None] + 0.5
        arm = sd_capsule(X, Y, a0[0], a0[1], elbow[0], elbow[1], h.arm_r)
        s0 = p - d * h.sleeve_from
        sleeve = sd_capsule(X, Y, s0[0], s0[1], elbow[0], elbow[1], h.arm_r * 1.18)
        alpha = np.clip(0.5 - np.minimum(arm, sleeve), 0, 1)
        if alpha.any():
            shade = 0.78 + 0.22 * np.sqrt(np.clip(-arm / h.arm_r, 0, 1))
            col = h.skin * 0.95 * shade[..., None]
            sl = np.clip(0.5 - sleeve, 0, 1)[..., None]
            col = col * (1 - sl) + h.sleeve * (0.8 + 0.2 * np.sqrt(np.clip(-sleeve / h.arm_r, 0, 1)))[..., None] * sl
            reg = canvas[ay0:ay1, ax0:ax1]
            reg += (col - reg) * alpha[..., None]
            idbuf[ay0:ay1, ax0:ax1][alpha >= 0.5] = ARM_LAYER
    x0, y0, x1, y1 = roi(*extent, W, H)
    if x0 < x1 and y0 < y1:
        X = np.arange(x0, x1, dtype=F32)[None, :] + 0.5
        Y = np.arange(y0, y1, dtype=F32)[:, None] + 0.5
        # palm: ellipse in the hand's frame
        u = (X - p[0]) * d[0] + (Y - p[1]) * d[1]
        v = -(X - p[0]) * d[1] + (Y - p[1]) * d[0]
        sdf = (np.sqrt((u / h.palm_a) ** 2 + (v / h.palm_b) ** 2) - 1) * h.palm_b
        for c in caps:
            sdf = np.minimum(sdf, sd_capsule(X, Y, *c))
        alpha = np.clip(0.5 - sdf, 0, 1)
        if alpha.any():
            shade = 0.8 + 0.2 * np.sqrt(np.clip(-sdf / (1.2 * h.finger_r), 0, 1))  # darker creases at edges
            col = h.skin * shade[..., None]
            reg = canvas[y0:y1, x0:x1]
            reg += (col - reg) * alpha[..., None]
            idbuf[y0:y1, x0:x1][alpha >= 0.5] = HAND_LAYER
            if masks is not None:
                m = np.zeros((H, W), bool)
                m[y0:y1, x0:x1] = alpha >= 0.5
                masks["hand"] = m
    return hand_box(h, p, d, caps, W, H)
