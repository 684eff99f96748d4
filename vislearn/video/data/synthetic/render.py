"""Scene rendering: background, objects, hand and forearm, camera, lighting, sensor noise.

Everything is numpy on small regions of interest; the frame-wide work per frame is a crop of the
background, one lighting multiply and one noise add. Boxes come from the same geometry that is
drawn: an object's box is its outline (measured once per instance) under the current pose, a
hand's box is its palm and fingers (not the forearm, as Something-Else annotators boxed hands),
both shifted by the camera jitter and clipped to the frame. A box is annotated only when some of
the object's pixels are visible in the frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .objects import NOUN_BY_NAME, Look, sd_capsule
from .templates import TEMPLATE_BY_TEXT, Ctx, Motion, appearance_curves

F32 = np.float32
OBJECT_SCALE = 1.3  # SSv2 objects are filmed from an arm's length: they fill a good part of the frame
MIN_VISIBLE_PIXELS = 4  # an object hidden (behind the hand, a distractor) or out of view gets no box
HAND_LAYER, ARM_LAYER = 250, 251


# --------------------------------------------------------------------------- small helpers
def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]-ish: a coarse random grid, bilinearly upsampled."""
    gh, gw = cells, max(1, int(round(cells * w / h)))
    g = rng.standard_normal((gh + 2, gw + 2)).astype(F32)
    ys = np.linspace(0, gh, h, dtype=F32)
    xs = np.linspace(0, gw, w, dtype=F32)
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _jitter_colour(rng, base, spread=0.1):
    return np.clip(np.asarray(base, F32) * rng.uniform(1 - spread, 1 + spread) + rng.uniform(-12, 12, 3), 0, 255)


# --------------------------------------------------------------------------- background
_WALLS = ((200, 195, 185), (150, 160, 170), (225, 220, 205), (120, 110, 100), (180, 170, 150), (90, 95, 110))
_WOOD = ((150, 100, 60), (120, 80, 50), (190, 150, 100), (95, 65, 45))
_CLOTH = ((60, 70, 90), (170, 60, 60), (90, 120, 90), (200, 200, 195), (70, 70, 72), (160, 140, 110))
_STONE = ((220, 220, 215), (190, 190, 185), (120, 120, 125))
_CHECK = (((230, 230, 225), (180, 50, 50)), ((235, 235, 230), (50, 70, 140)), ((210, 200, 170), (120, 90, 60)))


def make_background(rng: np.random.Generator, h: int, w: int, S: float) -> tuple[np.ndarray, float, str]:
    """A table (or floor) seen from above at an angle, a wall behind it or not (SSv2 clips are shot
    on desks, beds and floors, often looking down so that no wall shows).

    Returns the canvas, the y of the table's back edge (0 = no wall) and the surface material.
    """
    ys = np.arange(h, dtype=F32)[:, None]
    xs = np.arange(w, dtype=F32)[None, :]
    top_down = rng.random() < 0.3
    table_y = 0.0 if top_down else float(rng.uniform(0.15, 0.42) * h)
    material = str(rng.choice(["wood", "cloth", "stone", "check", "carpet"], p=[0.35, 0.2, 0.15, 0.12, 0.18]))
    low = smooth_noise(rng, h, w, 3)
    if material == "wood":
        c0 = _jitter_colour(rng, _WOOD[int(rng.integers(len(_WOOD)))])
        phase = smooth_noise(rng, h, w, 4) * 6.0
        grain = np.sin(ys * rng.uniform(0.25, 0.45) / S + phase) * 0.5 + 0.5
        plank = (np.floor((ys + rng.uniform(0, 60)) / (rng.uniform(45, 80) * S)) % 2) * 0.06
        table = c0 * (0.85 + 0.15 * grain + plank + 0.05 * low)[..., None]
    elif material == "check":
        a, b = _CHECK[int(rng.integers(len(_CHECK)))]
        size = rng.uniform(14, 30) * S
        sq = ((np.floor(xs / size) + np.floor(ys / size)) % 2)[..., None]
        table = (_jitter_colour(rng, a) * (1 - sq) + _jitter_colour(rng, b) * sq) * (1 + 0.06 * low)[..., None]
    else:
        palette = _CLOTH if material in ("cloth", "carpet") else _STONE
        c0 = _jitter_colour(rng, palette[int(rng.integers(len(palette)))])
        table = c0 * (1 + 0.08 * low)[..., None] * np.ones((h, w, 1), F32)
        if material == "stone":
            vein = np.abs(np.sin(xs * 0.04 / S + ys * 0.02 / S + smooth_noise(rng, h, w, 5) * 3.0)) < 0.06
            table = table * (1 - 0.18 * vein[..., None])
        else:
            fine = rng.standard_normal((h, w)).astype(F32) * (9.0 if material == "carpet" else 4.0)
            table = table + fine[..., None]
    canvas = np.asarray(table, F32)
    if not top_down:
        c1 = _jitter_colour(rng, _WALLS[int(rng.integers(len(_WALLS)))])
        c2 = _jitter_colour(rng, _WALLS[int(rng.integers(len(_WALLS)))]) * 0.8
        g = np.clip(ys / max(table_y, 1.0), 0, 1)
        wall = c1 * (1 - g[..., None]) + c2 * g[..., None]
        wall = wall * (1 + 0.07 * smooth_noise(rng, h, w, 2))[..., None]
        for _ in range(int(rng.integers(0, 4))):  # shelves, posters, a window: clutter behind the table
            x0, x1 = sorted(rng.uniform(0, w, 2))
            y0, y1 = sorted(rng.uniform(0, table_y, 2))
            box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            wall = np.where(box[..., None], _jitter_colour(rng, rng.uniform(40, 230, 3), 0.0), wall)
        above = (ys < table_y)[..., None]
        canvas = np.where(above, wall, canvas)
        edge = np.abs(ys - table_y) < 2.0 * S  # the table's back edge
        canvas = np.where(edge[..., None], canvas * 0.7, canvas)
    return np.clip(canvas, 0, 255).astype(F32), table_y, material


def make_lighting(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Per-video gain map: exposure, colour cast, light from one side, vignetting (phone cameras)."""
    ys = (np.arange(H, dtype=F32)[:, None] / H - 0.5)
    xs = (np.arange(W, dtype=F32)[None, :] / W - 0.5)
    gain = rng.uniform(0.75, 1.15)
    tint = np.array([rng.uniform(0.92, 1.08), 1.0, rng.uniform(0.9, 1.08)], F32)
    gx, gy = rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.2)
    vig = rng.uniform(0.0, 0.5)
    m = gain * (1 + gx * xs + gy * ys) * (1 - vig * (xs ** 2 + ys ** 2))
    return (np.clip(m, 0.3, 2.0)[..., None] * tint).astype(F32)


def camera_path(rng: np.random.Generator, T: int, S: float, margin: int) -> np.ndarray:
    """Integer frame shifts [T,2] of a hand-held phone: a smooth random walk (some clips are steady)."""
    sigma = 0.0 if rng.random() < 0.2 else rng.uniform(0.3, 1.6) * S
    pos = np.zeros(2)
    out = np.zeros((T, 2))
    vel = np.zeros(2)
    for t in range(T):
        vel = 0.7 * vel + rng.standard_normal(2) * sigma
        pos = np.clip(0.92 * pos + vel, -margin, margin)
        out[t] = pos
    return np.round(out).astype(np.int64)


# --------------------------------------------------------------------------- hand
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
        skin=_jitter_colour(rng, _SKIN[int(rng.integers(len(_SKIN)))], 0.06),
        sleeve=_jitter_colour(rng, _SLEEVES[int(rng.integers(len(_SLEEVES)))]),
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


def _union(boxes):
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    a = np.array(boxes)
    return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())


def _capsule_outline(x0, y0, x1, y1, r):
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


def _in_window(box, W: int, H: int) -> bool:
    return box[0] >= 0.5 and box[1] >= 0.5 and box[2] <= W - 0.5 and box[3] <= H - 0.5


def hand_box(h: HandLook, p, d, caps, W: int, H: int):
    """Box of the visible part of palm and fingers (each a convex piece: union of their boxes)."""
    full = _hand_extent(h, p, d, caps)
    if _in_window(full, W, H):
        return full
    n = max(64, int(np.ceil(2 * np.pi * h.palm_a / 0.5)))
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ca, sb = np.cos(th) * h.palm_a, np.sin(th) * h.palm_b
    ex = p[0] + ca * d[0] - sb * d[1]
    ey = p[1] + ca * d[1] + sb * d[0]
    parts = [clipped_box(ex, ey, W, H)]
    for c in caps:
        cb = (min(c[0], c[2]) - c[4], min(c[1], c[3]) - c[4], max(c[0], c[2]) + c[4], max(c[1], c[3]) + c[4])
        parts.append(cb if _in_window(cb, W, H) else clipped_box(*_capsule_outline(*c), W, H))
    return _union(parts)


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


def _clip_segment(a, b, x0, y0, x1, y1):
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


def _roi(x0, y0, x1, y1, W, H, pad=2.0):
    ix0, iy0 = max(0, int(np.floor(x0 - pad))), max(0, int(np.floor(y0 - pad)))
    ix1, iy1 = min(W, int(np.ceil(x1 + pad))), min(H, int(np.ceil(y1 + pad)))
    return ix0, iy0, ix1, iy1


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
    seg = _clip_segment(a0, elbow, -r, -r, W + r, H + r)  # only the part of the arm that can show
    if seg is not None:
        (sx0, sy0), (sx1, sy1) = seg
        ax0, ay0, ax1, ay1 = _roi(min(sx0, sx1) - r, min(sy0, sy1) - r, max(sx0, sx1) + r, max(sy0, sy1) + r, W, H)
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
    x0, y0, x1, y1 = _roi(*extent, W, H)
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


# --------------------------------------------------------------------------- objects
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
    if _in_window(full, W, H):
        return full
    return clipped_box(wx, wy, W, H, look.pad)


def draw_object(canvas, idbuf, layer: int, look: Look, st: ObjState, masks: dict | None = None, key=None) -> None:
    H, W = idbuf.shape
    c, s = np.cos(st.angle), np.sin(st.angle)
    f = _flip_scale(st.flip)
    ex, ey = look.ehw + 1, look.ehh * abs(f) + 1
    hw, hh = abs(c) * ex + abs(s) * ey, abs(s) * ex + abs(c) * ey
    x0, y0, x1, y1 = _roi(st.x - hw, st.y - hh, st.x + hw, st.y + hh, W, H)
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
    x0, y0, x1, y1 = _roi(cx - rx, cy - ry, cx + rx, cy + ry, W, H)
    if x0 >= x1 or y0 >= y1:
        return
    X = (np.arange(x0, x1, dtype=F32)[None, :] + 0.5 - cx) / rx
    Y = (np.arange(y0, y1, dtype=F32)[:, None] + 0.5 - cy) / ry
    k = np.clip((1 - np.sqrt(X * X + Y * Y)) / 0.5, 0, 1) * strength
    canvas[y0:y1, x0:x1] *= (1 - k)[..., None]


# --------------------------------------------------------------------------- a whole video
@dataclass
class Scene:
    """Everything drawn about one video, before rasterising."""

    W: int
    H: int
    T: int
    motion: Motion
    looks: list[Look]  # placeholders
    flip: np.ndarray
    squeeze: np.ndarray
    open: np.ndarray
    distractors: list[tuple[Look, float, float]]  # (look, centre x, ground y), static
    hand: HandLook
    background: np.ndarray
    margin: int
    shift: np.ndarray  # [T,2] camera jitter (content displacement), integer pixels
    lighting: np.ndarray
    flicker: np.ndarray
    noise: np.ndarray  # [K, H+16, W+16, 3] sensor noise bank
    noise_pick: np.ndarray  # [T, 3] (bank, dy, dx)
    extras: dict = field(default_factory=dict)


def _overlap_fraction(a, b) -> float:
    """Fraction of box a covered by box b."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)
    return ix * iy / area


def build_scene(template_text: str, nouns: list[str], distractor_nouns: list[str], T: int, W: int, H: int,
                rng: np.random.Generator) -> Scene:
    """Draw a scene from `rng` (the order of draws never depends on the template within a motion group)."""
    template = TEMPLATE_BY_TEXT[template_text]
    S = H / 240.0
    margin = int(np.ceil(8 * S))
    background, table_y, material = make_background(rng, H + 2 * margin, W + 2 * margin, S)
    table_y = max(table_y - margin, 0.0)
    hand = make_hand(rng, S)
    # placeholders stand on the table; nearer ones (lower in the frame) look bigger
    g_lo = max(0.62 * H, table_y + 0.3 * H)
    g0 = rng.uniform(g_lo, 0.94 * H)
    grounds = [g0] + [float(np.clip(g0 + rng.uniform(-0.06, 0.06) * H, g_lo, 0.97 * H)) for _ in nouns[1:]]

    def perspective(g):
        return OBJECT_SCALE * S * (0.78 + 0.22 * (g - 0.6 * H) / (0.37 * H))

    looks = [NOUN_BY_NAME[n].make_look(rng, perspective(g) * rng.uniform(0.85, 1.15)) for n, g in zip(nouns, grounds)]
    ctx = Ctx(rng=rng, T=T, W=W, H=H, S=S, sizes=[(lk.ehw, lk.ehh) for lk in looks], grounds=grounds,
              reach=hand.reach, palm=hand.palm_b)
    motion = template.script(ctx)
    flip, squeeze, opened = appearance_curves(template.appearance, motion.progress)
    # distractors: static objects elsewhere on the table, not annotated (Something-Else boxes only
    # the placeholders and the hand); they may hide part of a placeholder, never most of it
    key_boxes = []
    for k, lk in enumerate(looks):
        for t in (0, T - 1):
            key_boxes.append(object_box(lk, ObjState(*motion.obj[k, t])))
    distractors = []
    for name in distractor_nouns:
        for _ in range(20):
            g = rng.uniform(max(0.5 * H, table_y + 0.2 * H), 0.98 * H)
            lk = NOUN_BY_NAME[name].make_look(rng, perspective(g) * rng.uniform(0.8, 1.1))
            x = rng.uniform(0.05, 0.95) * W
            box = object_box(lk, ObjState(x, g - lk.ehh))
            if all(_overlap_fraction(kb, box) < 0.35 for kb in key_boxes):
                distractors.append((lk, x, g))
                break
    shift = camera_path(rng, T, S, margin)
    lighting = make_lighting(rng, H, W)
    flicker = (1 + np.cumsum(rng.normal(0, 0.006, T))).clip(0.9, 1.1).astype(F32)  # auto-exposure drift
    sigma = rng.uniform(1.5, 5.0)  # sensor noise, 0..255 units
    noise = (rng.standard_normal((2, H + 16, W + 16, 3)) * sigma).astype(F32)
    noise_pick = np.stack([rng.integers(0, 2, T), rng.integers(0, 16, T), rng.integers(0, 16, T)], axis=1)
    extras = {"material": material, "table_y": round(float(table_y), 2), "hand_edge": motion.edge,
              "camera_shake": round(float(np.abs(np.diff(shift, axis=0)).mean()) if T > 1 else 0.0, 3),
              "noise_sigma": round(float(sigma), 3), "distractor_nouns": [lk.noun.name for lk, _, _ in distractors]}
    return Scene(W=W, H=H, T=T, motion=motion, looks=looks, flip=flip, squeeze=squeeze, open=opened,
                 distractors=distractors, hand=hand, background=background, margin=margin, shift=shift,
                 lighting=lighting, flicker=flicker, noise=noise, noise_pick=noise_pick, extras=extras)


@dataclass
class Rendered:
    frames: np.ndarray  # uint8 [T,H,W,3]
    boxes: list[list[tuple[str, tuple[float, float, float, float]]]]  # per frame: (track, xyxy), objects then hand
    masks: list[dict] | None = None  # debug: per frame, track -> bool mask [H,W] of its drawn pixels


def rasterise(scene: Scene, debug: bool = False) -> Rendered:
    W, H, T, m = scene.W, scene.H, scene.T, scene.margin
    mo = scene.motion
    n = len(scene.looks)
    frames = np.empty((T, H, W, 3), np.uint8)
    all_boxes, all_masks = [], [] if debug else None
    idbuf = np.empty((H, W), np.uint8)
    for t in range(T):
        sx, sy = (int(v) for v in scene.shift[t])
        canvas = scene.background[m - sy:m - sy + H, m - sx:m - sx + W].copy()
        idbuf.fill(0)
        masks = {} if debug else None
        states = []
        for k, lk in enumerate(scene.looks):
            x, y = mo.obj[k, t] + (sx, sy)
            angle = 0.0 if mo.angle is None else float(mo.angle[k, t])
            if k == 0:
                st = ObjState(x, y, angle, float(scene.flip[t]), float(scene.squeeze[t]), float(scene.open[t]))
            else:
                st = ObjState(x, y, angle)
            states.append(st)
        items = [(float(mo.z[k, t]), k, scene.looks[k], states[k], mo.ground[k, t] + sy) for k in range(n)]
        for j, (lk, x, g) in enumerate(scene.distractors):
            items.append((g, 100 + j, lk, ObjState(x + sx, g - lk.ehh + sy), g + sy))
        items.sort(key=lambda it: (it[0], it[1]))
        for _, key, lk, st, g in items:
            draw_shadow(canvas, lk, st.x, st.y + lk.ehh * abs(st.flip), g, H / 240.0)
        for _, key, lk, st, _ in items:
            layer = key + 1 if key < 100 else key - 100 + 101
            draw_object(canvas, idbuf, layer, lk, st, masks, key if key < 100 else None)
        hand_box = draw_hand(canvas, idbuf, scene.hand, mo.hand[t] + (sx, sy), mo.elbow + (sx, sy), float(mo.grip[t]),
                             masks)
        counts = np.bincount(idbuf.ravel(), minlength=256)
        boxes = []
        for k in range(n):
            b = visible_object_box(scene.looks[k], states[k], W, H) if counts[k + 1] >= MIN_VISIBLE_PIXELS else None
            if b is not None and b[2] > b[0] and b[3] > b[1]:
                boxes.append((f"{k:04d}", b))
        b = hand_box if counts[HAND_LAYER] >= MIN_VISIBLE_PIXELS else None
        if b is not None and b[2] > b[0] and b[3] > b[1]:
            boxes.append(("hand", b))
        all_boxes.append(boxes)
        canvas *= scene.lighting
        canvas *= scene.flicker[t]
        bank, oy, ox = (int(v) for v in scene.noise_pick[t])
        canvas += scene.noise[bank, oy:oy + H, ox:ox + W]
        np.clip(canvas, 0, 255, out=canvas)
        frames[t] = canvas
        if debug:
            all_masks.append({("hand" if k == "hand" else f"{k:04d}"): v for k, v in masks.items() if k is not None})
    return Rendered(frames=frames, boxes=all_boxes, masks=all_masks)
