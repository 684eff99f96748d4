"""Nouns: the object categories of the synthetic video set (`vislearn.video.data.synthetic`) and of the
image set (`vislearn.backbones.imagesets`), defined by their looks (shape, colour, texture, size).

Each noun is a silhouette (a signed distance function in pixels, negative inside) and a painter
(colour per pixel) in the object's own frame: x to the right, y down, origin near the middle, in
pixels at a 240-px frame height. Looks vary per instance (SSv2 "book"s come in every colour and
size), so a noun is told by shape and texture first, colour second, as in the real videos.

Every noun is vertically asymmetric in shape or texture (a cap, a stem, a title band, a lid...),
so that turning it upside down is visible in the pixels, as it is for most real SSv2 objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

F32 = np.float32


# --------------------------------------------------------------------------- signed distances (pixels)
def sd_box(x, y, bx, by, r=0.0):
    """Rounded box with half sizes (bx, by) and corner radius r."""
    qx = np.abs(x) - (bx - r)
    qy = np.abs(y) - (by - r)
    out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0) - r


def sd_ellipse(x, y, a, b):
    """Approximate distance to an ellipse with semi-axes (a, b) (exact for circles)."""
    k = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    return (k - 1.0) * min(a, b)


def sd_capsule(x, y, ax, ay, bx, by, r):
    """Segment (ax,ay)-(bx,by) thickened by r."""
    px, py = x - ax, y - ay
    dx, dy = bx - ax, by - ay
    h = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.sqrt((px - dx * h) ** 2 + (py - dy * h) ** 2) - r


def _mix(rgb, m, colour):
    """rgb <- rgb + (colour - rgb) * m   (m: mask or weight in [0,1], same shape as the region)."""
    rgb += (np.asarray(colour, F32) - rgb) * np.asarray(m, F32)[..., None]
    return rgb


def _solid(x, colour):
    out = np.empty(x.shape + (3,), F32)
    out[...] = np.asarray(colour, F32)
    return out


# --------------------------------------------------------------------------- instance
@dataclass
class Look:
    """One instance of a noun: size, colours, texture phase; plus its measured extent.

    `ox, oy` is the centre of the silhouette's extent in shape coordinates, `ehw, ehh` its half
    width/height, and `contour` points on its outline relative to that centre: the renderer turns
    them into the annotated box, so the box is the object's true extent under any pose.
    """

    noun: "Noun"
    hw: float
    hh: float
    colours: list[np.ndarray]
    phase: float
    ox: float = 0.0
    oy: float = 0.0
    ehw: float = 0.0
    ehh: float = 0.0
    contour: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), F32))
    pad: float = 0.0


@dataclass(frozen=True)
class Noun:
    name: str
    size: tuple[float, float]  # typical (width, height) in px at a 240-px frame height
    shape: Callable  # (x, y, look) -> sdf (pixels)
    paint: Callable  # (x, y, look) -> rgb float32 [...,3] in 0..255
    palettes: tuple  # per colour slot: a tuple of candidate RGB colours
    roundness: float = 0.0  # how much world-fixed shading (sphere-like) the object gets
    gloss: float = 0.0  # specular highlight strength

    def make_look(self, rng: np.random.Generator, scale: float) -> Look:
        """An instance: size jitter (distance to camera, instance size), colour jitter, texture phase."""
        aspect = rng.uniform(0.92, 1.08)
        w = self.size[0] * scale * aspect
        h = self.size[1] * scale / aspect
        colours = []
        for slot in self.palettes:
            base = np.asarray(slot[int(rng.integers(len(slot)))], F32)
            colours.append(np.clip(base * rng.uniform(0.88, 1.12) + rng.uniform(-10, 10, 3), 0, 255).astype(F32))
        look = Look(self, w / 2, h / 2, colours, float(rng.uniform(0, 2 * np.pi)))
        measure(look)
        return look


def measure(look: Look) -> None:
    """Sample the silhouette on a fine grid: extent centre, half sizes and outline points."""
    step = max(0.4, max(look.hw, look.hh) / 100)
    xs = np.arange(-2 * look.hw, 2 * look.hw + step, step, dtype=F32)
    ys = np.arange(-2 * look.hh, 2 * look.hh + step, step, dtype=F32)
    inside = look.noun.shape(xs[None, :], ys[:, None], look) < 0
    if not inside.any() or inside[[0, -1]].any() or inside[:, [0, -1]].any():
        raise ValueError(f"noun {look.noun.name!r}: silhouette empty or far outside its nominal size")
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    x0, x1 = xs[cols[0]] - step / 2, xs[cols[-1]] + step / 2
    y0, y1 = ys[rows[0]] - step / 2, ys[rows[-1]] + step / 2
    look.ox, look.oy = float(x0 + x1) / 2, float(y0 + y1) / 2
    look.ehw, look.ehh = float(x1 - x0) / 2, float(y1 - y0) / 2
    pad = np.pad(inside, 1)
    edge = inside & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
    r, c = np.nonzero(edge)
    pts = np.stack([xs[c] - look.ox, ys[r] - look.oy], axis=1).astype(F32)
    look.contour = pts
    look.pad = step / 2


# --------------------------------------------------------------------------- the nouns
# Shape functions get pixel coordinates (x, y) in the object's frame and the look (hw, hh: half size).
def _ball_shape(x, y, L):
    return sd_ellipse(x, y, L.hw, L.hh)


def _red_ball_paint(x, y, L):
    rgb = _solid(x, L.colours[0])
    u, v = x / L.hw, y / L.hh
    # a printed white star-ish logo on the upper half (flips when the ball is turned over)
    d = np.sqrt((u - 0.15) ** 2 + (v + 0.45) ** 2)
    ang = np.arctan2(v + 0.45, u - 0.15)
    star = d < 0.2 + 0.08 * np.cos(5 * ang + L.phase)
    return _mix(rgb, star, L.colours[1])


def _tennis_paint(x, y, L):
    rgb = _solid(x, L.colours[0])
    u, v = x / L.hw, y / L.hh
    fuzz = np.sin(x * 2.3 + L.phase) * np.sin(y * 2.1) * 6.0
    rgb += fuzz[..., None]
    # the curved white seam, offset upwards
    seam = np.abs(v + 0.25 - 0.45 * np.sin(2.4 * u + L.phase)) < 0.09
    return _mix(rgb, seam, (238, 238, 225))


def _orange_shape(x, y, L):
    body = sd_ellipse(x, y - 0.08 * L.hh, L.hw, 0.92 * L.hh)
    stem = sd_box(x - 0.05 * L.hw, y + 0.9 * L.hh, 0.09 * L.hw, 0.12 * L.hh)
    return np.minimum(body, stem)


def _orange_paint(x, y, L):
    rgb = _solid(x, L.colours[0])
    dimples = (np.sin(x * 1.7 + L.phase) * np.sin(y * 1.9 + 2 * L.phase)) * 10.0
    rgb += dimples[..., None]
    u, v = x / L.hw, y / L.hh
    stem = (v < -0.72) & (np.abs(u - 0.05) < 0.16)
    leaf = ((u - 0.28) / 0.22) ** 2 + ((v + 0.78) / 0.1) ** 2 < 1
    return _mix(rgb, stem | leaf, (60, 120, 40))


def _apple_shape(x, y, L):
    body = np.minimum(sd_ellipse(x + 0.28 * L.hw, y - 0.1 * L.hh, 0.72 * L.hw, 0.86 * L.hh),
                      sd_ellipse(x - 0.28 * L.hw, y - 0.1 * L.hh, 0.72 * L.hw, 0.86 * L.hh))
    stem = sd_capsule(x, y, 0.0, -0.6 * L.hh, 0.12 * L.hw, -0.9 * L.hh, 0.06 * L.hw)
    return np.minimum(body, stem)


def _apple_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    # a yellow-green blush on the lower side, brown stem
    blush = np.clip(0.7 * (v - 0.1) + 0.3 * u, 0, 1)
    _mix(rgb, blush, L.colours[1])
    return _mix(rgb, (v < -0.62) & (np.abs(u - 0.06) < 0.12), (95, 60, 30))


def _book_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=1.5)


def _book_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    _mix(rgb, u < -0.82, L.colours[0] * 0.6)  # spine
    title = (v > -0.8) & (v < -0.38) & (np.abs(u) < 0.7)
    _mix(rgb, title, L.colours[1])
    lines = title & (np.abs(np.sin((v + 0.8) * 22)) > 0.75) & (np.abs(u) < 0.55)
    _mix(rgb, lines, L.colours[0] * 0.5)
    return _mix(rgb, (v > 0.55) & (v < 0.62) & (np.abs(u) < 0.5), L.colours[1])


def _bottle_shape(x, y, L):
    body = sd_box(x, y - 0.38 * L.hh, L.hw, 0.62 * L.hh, r=0.3 * L.hw)
    shoulder = sd_ellipse(x, y + 0.22 * L.hh, L.hw, 0.34 * L.hh)
    neck = sd_box(x, y + 0.62 * L.hh, 0.36 * L.hw, 0.34 * L.hh)
    cap = sd_box(x, y + 0.9 * L.hh, 0.42 * L.hw, 0.1 * L.hh, r=1.0)
    return np.minimum(np.minimum(body, shoulder), np.minimum(neck, cap))


def _bottle_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (18 * np.exp(-((u + 0.45) / 0.18) ** 2))[..., None]  # a vertical reflection on the plastic
    _mix(rgb, (v > 0.05) & (v < 0.55), L.colours[1])  # label
    _mix(rgb, (v > 0.22) & (v < 0.3), L.colours[2])
    return _mix(rgb, v < -0.78, L.colours[2])  # cap


def _mug_shape(x, y, L):
    body = sd_box(x + 0.22 * L.hw, y, 0.78 * L.hw, L.hh, r=0.12 * L.hw)
    cx = 0.62 * L.hw
    ring = np.abs(np.sqrt((x - cx) ** 2 + (y + 0.05 * L.hh) ** 2) - 0.26 * L.hw) - 0.12 * L.hw
    ring = np.maximum(ring, -(x - cx))
    return np.minimum(body, ring)


def _mug_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    _mix(rgb, v < -0.8, L.colours[1])  # rim
    logo = ((u + 0.22) / 0.3) ** 2 + ((v + 0.05) / 0.35) ** 2 < 1
    return _mix(rgb, logo, L.colours[1])


def _box_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=1.0)


def _box_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (np.sin(x * 0.9 + L.phase) * 3.0)[..., None]  # corrugation
    _mix(rgb, np.abs(v + 0.55) < 0.12, L.colours[1])  # tape across the top
    _mix(rgb, np.abs(v + 0.8) < 0.04, L.colours[0] * 0.75)  # flap edge
    arrow = (np.abs(u - 0.55) < 0.08) & (v > 0.25) & (v < 0.7)
    return _mix(rgb, arrow | ((np.abs(u - 0.55) < 0.22 - 0.5 * (v - 0.1)) & (v > 0.1) & (v < 0.3)), (45, 35, 30))


def _cup_shape(x, y, L):
    half = L.hw * (0.78 - 0.22 * (y / L.hh))  # wider at the rim (top)
    return np.maximum(np.abs(x) - half, np.abs(y) - L.hh)


def _cup_paint(x, y, L):
    v = y / L.hh
    rgb = _solid(x, L.colours[0])
    _mix(rgb, (v > -0.25) & (v < 0.4), L.colours[1])  # sleeve
    return _mix(rgb, v < -0.88, L.colours[0] * 0.8)  # rim


def _can_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=0.22 * L.hw)


def _can_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb *= (1.0 + 0.25 * np.cos(u * 1.6))[..., None] * 0.85  # cylinder
    _mix(rgb, v < -0.82, (190, 192, 196))  # top rim
    wave = np.abs(v - 0.15 * np.sin(3 * u + L.phase) + 0.2) < 0.1
    return _mix(rgb, wave, L.colours[1])


def _pen_shape(x, y, L):
    taper = np.clip((L.hw - x) / (0.18 * L.hw), 0.25, 1.0)
    return np.maximum(np.abs(y) - L.hh * taper, np.abs(x) - L.hw)


def _pen_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    _mix(rgb, u < -0.45, L.colours[1])  # cap
    _mix(rgb, (u < -0.5) & (u > -0.95) & (v < -0.35), (225, 225, 230))  # clip on the top side
    return _mix(rgb, u > 0.85, (40, 40, 45))  # tip


def _phone_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=0.2 * L.hw)


def _phone_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    screen = (np.abs(u) < 0.86) & (v > -0.8) & (v < 0.88)
    _mix(rgb, screen, L.colours[1])
    icons = screen & (v < 0.2) & (np.sin((u + 0.9) * 12) > 0.3) & (np.sin((v + 0.8) * 14) > 0.35)
    _mix(rgb, icons, (220, 220, 235))
    return _mix(rgb, (u * L.hw) ** 2 + ((v + 0.89) * L.hh) ** 2 < (0.09 * L.hw) ** 2 + 2, (200, 200, 210))


def _remote_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=0.45 * L.hw)


def _remote_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    power = (u * 1.0) ** 2 + ((v + 0.78) * L.hh / L.hw) ** 2 < 0.12
    _mix(rgb, power, (200, 40, 40))
    pads = (v > -0.45) & (v < 0.55) & (np.cos(u * 7.5) > 0.35) & (np.cos((v + 0.45) * 18) > 0.3)
    _mix(rgb, pads, L.colours[1])
    return _mix(rgb, (v > 0.62) & (v < 0.72) & (np.abs(u) < 0.6), (60, 140, 210))


def _banana_shape(x, y, L):
    # a crescent: a wide ellipse minus a shifted one, opening upwards
    outer = sd_ellipse(x, y + 0.9 * L.hh, 1.0 * L.hw, 1.9 * L.hh)
    inner = sd_ellipse(x, y + 1.6 * L.hh, 0.95 * L.hw, 1.9 * L.hh)
    return np.maximum(np.maximum(outer, -inner), -(y + 1.05 * L.hh))  # blunt stalk ends, not needle tips


def _banana_paint(x, y, L):
    u = x / L.hw
    rgb = _solid(x, L.colours[0])
    _mix(rgb, np.clip((np.abs(u) - 0.72) / 0.15, 0, 1), (110, 80, 30))
    spots = (np.sin(x * 0.9 + L.phase) * np.sin(y * 1.3) > 0.85)
    return _mix(rgb, spots, L.colours[0] * 0.7)


def _sponge_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=2.0)


def _sponge_paint(x, y, L):
    v = y / L.hh
    rgb = _solid(x, L.colours[0])
    pores = np.sin(x * 1.9 + L.phase) * np.sin(y * 2.3 + 1.3 * L.phase) > 0.7
    _mix(rgb, pores, L.colours[0] * 0.72)
    return _mix(rgb, v < -0.35, L.colours[1])  # scrubbing layer on top


def _wallet_shape(x, y, L):
    return sd_box(x, y, L.hw, L.hh, r=0.15 * L.hh)


def _wallet_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (np.sin(x * 2.7 + L.phase) * np.cos(y * 3.1) * 4)[..., None]  # leather grain
    flap = v < -0.2 + 0.25 * (1 - u ** 2)
    _mix(rgb, flap, L.colours[0] * 0.82)
    stitch = (np.abs(np.abs(u) - 0.9) < 0.03) | (np.abs(np.abs(v) - 0.85) < 0.05)
    _mix(rgb, stitch & (np.sin(x * 1.5) > 0), L.colours[1])
    return _mix(rgb, (u ** 2 + ((v - 0.05) * 2) ** 2) < 0.02, (200, 190, 150))  # clasp


def _spoon_shape(x, y, L):
    bowl = sd_ellipse(x - 0.62 * L.hw, y, 0.38 * L.hw, L.hh)
    handle = sd_capsule(x, y, -0.95 * L.hw, -0.25 * L.hh, 0.3 * L.hw, 0.0, 0.22 * L.hh)
    return np.minimum(bowl, handle)


def _spoon_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (40 * np.exp(-((v + 0.35) / 0.2) ** 2) - 20 * np.clip(v, 0, 1))[..., None]  # metal highlight
    return _mix(rgb, ((u - 0.62) / 0.2) ** 2 + ((v - 0.2) / 0.5) ** 2 < 1, L.colours[0] * 0.7)


def _car_shape(x, y, L):
    body = sd_box(x, y - 0.2 * L.hh, L.hw, 0.5 * L.hh, r=0.2 * L.hh)
    cabin = sd_box(x + 0.05 * L.hw, y + 0.6 * L.hh, 0.5 * L.hw, 0.4 * L.hh, r=0.25 * L.hh)
    wheels = np.minimum(sd_ellipse(x + 0.55 * L.hw, y - 0.72 * L.hh, 0.2 * L.hw, 0.28 * L.hh),
                        sd_ellipse(x - 0.55 * L.hw, y - 0.72 * L.hh, 0.2 * L.hw, 0.28 * L.hh))
    return np.minimum(np.minimum(body, cabin), wheels)


def _car_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    window = (v < -0.3) & (v > -0.85) & (np.abs(u - 0.05) < 0.42) & (np.abs(u - 0.05) > 0.04)
    _mix(rgb, window, (150, 200, 230))
    wheel = (v > 0.45) & ((np.abs(np.abs(u) - 0.55) < 0.2))
    _mix(rgb, wheel, (30, 30, 32))
    return _mix(rgb, wheel & ((np.abs(u) - 0.55) ** 2 * 25 + (v - 0.72) ** 2 * 12 < 0.25), (170, 170, 175))


_REDS = ((200, 30, 35), (220, 45, 40))
_BOOK_COVERS = ((30, 45, 110), (140, 25, 30), (30, 100, 60), (30, 30, 34), (225, 215, 190), (220, 150, 30))
_LIGHT = ((235, 230, 215), (245, 245, 245), (240, 210, 60))
_CAN = ((200, 25, 30), (185, 190, 195), (30, 80, 170), (40, 140, 60))
_CAR = ((210, 40, 40), (40, 90, 200), (240, 200, 40), (60, 160, 80))

NOUNS: tuple[Noun, ...] = (
    # round things, told apart by colour and surface pattern (SSv2 has many balls and fruit)
    Noun("red ball", (50, 50), _ball_shape, _red_ball_paint, (_REDS, ((245, 245, 240),)), 0.5, 0.35),
    Noun("tennis ball", (42, 42), _ball_shape, _tennis_paint, (((200, 220, 60), (185, 215, 50)),), 0.45, 0.1),
    Noun("orange", (52, 52), _orange_shape, _orange_paint, (((240, 140, 30), (235, 120, 20)),), 0.45, 0.15),
    Noun("apple", (52, 52), _apple_shape, _apple_paint, (((180, 30, 30), (150, 25, 40)),
                                                        ((190, 190, 60), (120, 170, 50))), 0.45, 0.25),
    # flat rectangular things: printed covers, cardboard, screens
    Noun("book", (62, 86), _book_shape, _book_paint, (_BOOK_COVERS, _LIGHT)),
    Noun("box", (92, 64), _box_shape, _box_paint, (((185, 140, 90), (170, 125, 80)), ((215, 195, 150),)), 0.1),
    Noun("phone", (42, 84), _phone_shape, _phone_paint, (((25, 25, 28), (200, 200, 205), (60, 60, 70)),
                                                        ((20, 40, 90), (40, 30, 70)))),
    Noun("wallet", (70, 48), _wallet_shape, _wallet_paint, (((110, 65, 35), (40, 30, 25), (150, 30, 40)),
                                                           ((210, 190, 150),)), 0.1),
    Noun("sponge", (64, 40), _sponge_shape, _sponge_paint, (((240, 210, 60), (245, 190, 70)),
                                                           ((50, 130, 60), (40, 110, 170)))),
    Noun("remote control", (28, 92), _remote_shape, _remote_paint, (((45, 45, 50), (25, 25, 28), (190, 190, 195)),
                                                                   ((140, 140, 150), (90, 90, 100))), 0.1),
    # containers: silhouettes with a neck, a handle, a taper
    Noun("bottle", (34, 98), _bottle_shape, _bottle_paint, (((60, 150, 90), (70, 130, 200), (200, 220, 230)),
                                                           ((245, 245, 245), (230, 40, 40)),
                                                           ((230, 40, 40), (30, 60, 160), (250, 250, 250))), 0.2, 0.2),
    Noun("mug", (74, 60), _mug_shape, _mug_paint, (((240, 240, 235), (40, 80, 170), (240, 200, 50), (30, 30, 30)),
                                                  ((200, 40, 40), (40, 40, 40), (90, 170, 210))), 0.25, 0.15),
    Noun("cup", (46, 62), _cup_shape, _cup_paint, (((245, 245, 240),), ((150, 100, 60), (40, 120, 70), (170, 40, 40))),
         0.2),
    Noun("can", (38, 70), _can_shape, _can_paint, (_CAN, ((245, 245, 245), (230, 200, 40))), 0.15, 0.25),
    # long thin things and odd silhouettes
    Noun("pen", (96, 12), _pen_shape, _pen_paint, (((30, 60, 170), (30, 30, 30), (200, 30, 30)),
                                                  ((20, 40, 120), (60, 60, 60))), 0.2, 0.2),
    Noun("spoon", (92, 24), _spoon_shape, _spoon_paint, (((185, 188, 195), (170, 172, 180)),), 0.1, 0.3),
    Noun("banana", (92, 40), _banana_shape, _banana_paint, (((235, 205, 50), (225, 200, 70)),), 0.25, 0.1),
    Noun("toy car", (82, 48), _car_shape, _car_paint, (_CAR,), 0.15, 0.2),
)

NOUN_BY_NAME = {n.name: n for n in NOUNS}
