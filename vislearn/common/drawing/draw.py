"""Drawing one object (a noun's `Look`) under a pose: position, rotation, flip (turned over), squeeze,
an opening at the top; anti-aliased from its signed distance, shaded from a world-fixed light; its box
(full or visible part) from the same geometry; a soft contact shadow on the surface below it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import clipped_box, in_window, roi
from .objects import Look

F32 = np.float32


@dataclass
class ObjState:
    x: float
    y: float
    angle: float = 0.0
    flip: float = 1.0
    squeeze: float = 0.0
    open: float = 0.0


def _flip_scale(flip: float) -> float:
    """Vertical scale of a turning object; edge-on it is still a thin sliver, never nothing."""
    return float(np.sign(flip) or 1.0) * max(abs(flip), 0.15)


def _outline(look: Look, st: ObjState) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(st.angle), np.sin(st.angle)
    u = look.contour[:, 0]
    v = look.contour[:, 1] * _flip_scale(st.flip)
    return st.x + u * c - v * s, st.y + u * s + v * c


def object_box(look: Look, st: ObjState) -> tuple[float, float, float, float]:
    """The object's full extent under its pose (rest shape: a squeezed object deforms inside it)."""
    wx, wy = _outline(look, st)
    pad = look.pad
    return float(wx.min() - pad), float(wy.min() - pad), float(wx.max() + pad), float(wy.max() + pad)


def visible_object_box(look: Look, st: ObjState, W: int, H: int):
    """Box of the part of the object inside the frame (None when none is)."""
    wx, wy = _outline(look, st)
    full = (float(wx.min() - look.pad), float(wy.min() - look.pad), float(wx.max() + look.pad),
            float(wy.max() + look.pad))
    if in_window(full, W, H):
        return full
    return clipped_box(wx, wy, W, H, look.pad)


def draw_object(canvas, idbuf, layer: int, look: Look, st: ObjState, masks: dict | None = None, key=None) -> None:
    H, W = idbuf.shape
    c, s = np.cos(st.angle), np.sin(st.angle)
    f = _flip_scale(st.flip)
    ex, ey = look.ehw + 1, look.ehh * abs(f) + 1
    hw, hh = abs(c) * ex + abs(s) * ey, abs(s) * ex + abs(c) * ey
    x0, y0, x1, y1 = roi(st.x - hw, st.y - hh, st.x + hw, st.y + hh, W, H)
    if x0 >= x1 or y0 >= y1:
        return
    dx = np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5 - st.x)
    dy = np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5 - st.y)
    u = dx * F32(c) + dy * F32(s)
    vw = dy * F32(c) - dx * F32(s)  # world-aligned (unflipped): light is fixed to the world
    v = vw / F32(f)
    if st.squeeze > 0:  # pinched at the middle, a little shorter: the deformation stays inside the box
        vn = np.clip(v / look.ehh, -1, 1)
        u = u * (1 + 0.55 * st.squeeze * (1 - vn * vn))
        v = v * (1 + 0.08 * st.squeeze)
    x, y = u + F32(look.ox), v + F32(look.oy)
    sdf = look.noun.shape(x, y, look)
    alpha = np.clip(0.5 - sdf, 0, 1)  # anti-aliased edge, never more than half a pixel outside the outline
    if not alpha.any():
        return
    rgb = look.noun.paint(x, y, look)
    un, vn = u / F32(look.ehw), v / F32(look.ehh)
    if st.squeeze > 0:  # creases where the hand presses
        crease = np.maximum(np.sin(7 * un + 2.5 * vn + look.phase), 0) * np.clip(1 - vn * vn, 0, 1)
        rgb *= (1 - 0.35 * st.squeeze * crease)[..., None]
    if st.open > 0:  # an opening at the top (lid off, flap open): the dark inside shows
        hole = ((un / 0.62) ** 2 + ((vn + 0.58) / 0.24) ** 2)
        inner = np.clip((1 - hole) * 6, 0, 1) * F32(st.open)
        rim = np.clip((1 - np.abs(hole - 1.08) * 8), 0, 1) * F32(st.open)
        rgb += (F32(235) - rgb) * rim[..., None] * 0.6
        rgb += (look.colours[0] * F32(0.15) + F32(8) - rgb) * inner[..., None]
    noun = look.noun
    if noun.roundness or noun.gloss:  # world-fixed shading: lit from the upper left
        wu, wv = dx / F32(look.ehw), dy / F32(look.ehh)
        shade = 1 + noun.roundness * (-0.25 * wu - 0.4 * wv) * 0.8
        shade = shade + noun.gloss * 1.6 * np.exp(-((wu + 0.35) ** 2 + (wv + 0.45) ** 2) / 0.04)
        rgb *= shade[..., None]
    reg = canvas[y0:y1, x0:x1]
    reg += (rgb - reg) * alpha[..., None]
    idbuf[y0:y1, x0:x1][alpha >= 0.5] = layer
    if masks is not None:
        m = np.zeros((H, W), bool)
        m[y0:y1, x0:x1] = alpha >= 0.5
        masks[key] = m


def draw_shadow(canvas, look: Look, x: float, bottom: float, ground: float, S: float) -> None:
    """A soft contact shadow on the surface below the object, fading as it is lifted."""
    H, W = canvas.shape[:2]
    height = ground - bottom
    strength = 0.35 * float(np.clip(1 - height / (60 * S), 0, 1))
    if strength <= 0.01:
        return
    rx, ry = look.ehw * 1.05 + 2, look.ehw * 0.16 + 2 * S
    cx, cy = x + 0.12 * look.ehw, ground
    x0, y0, x1, y1 = roi(cx - rx, cy - ry, cx + rx, cy + ry, W, H)
    if x0 >= x1 or y0 >= y1:
        return
    X = (np.arange(x0, x1, dtype=F32)[None, :] + 0.5 - cx) / rx
    Y = (np.arange(y0, y1, dtype=F32)[:, None] + 0.5 - cy) / ry
    k = np.clip((1 - np.sqrt(X * X + Y * Y)) / 0.5, 0, 1) * strength
    canvas[y0:y1, x0:x1] *= (1 - k)[..., None]
