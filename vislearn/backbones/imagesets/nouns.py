"""The image set's classes: the 18 nouns of the synthetic videos (`vislearn.common.drawing.objects.NOUNS`) and six
drawn for the image set only (they are not in the video set, whose pixels they would change): key, light bulb,
fork, glasses, alarm clock, hammer. Same conventions as the video nouns: a silhouette (signed distance in pixels,
negative inside) and a painter in the object's own frame, x right, y down, sizes in pixels at a 240-px frame."""
from __future__ import annotations

import numpy as np

from vislearn.common.drawing.objects import NOUNS, Noun, sd_box, sd_capsule, sd_ellipse

F32 = np.float32


def _solid(x, colour):
    out = np.empty(x.shape + (3,), F32)
    out[...] = np.asarray(colour, F32)
    return out


def _mix(rgb, m, colour):
    rgb += (np.asarray(colour, F32) - rgb) * np.asarray(m, F32)[..., None]
    return rgb


# --------------------------------------------------------------------------- key: a ring head, a shaft, a bit
def _key_shape(x, y, L):
    hx = x + 0.58 * L.hw
    head = np.maximum(sd_ellipse(hx, y, 0.42 * L.hw, 0.95 * L.hh), -sd_ellipse(hx, y, 0.15 * L.hw, 0.34 * L.hh))
    shaft = sd_box(x - 0.3 * L.hw, y, 0.62 * L.hw, 0.2 * L.hh)
    bit = np.maximum(sd_box(x - 0.68 * L.hw, y - 0.42 * L.hh, 0.24 * L.hw, 0.32 * L.hh),
                     -sd_box(x - 0.7 * L.hw, y - 0.66 * L.hh, 0.07 * L.hw, 0.14 * L.hh))
    return np.minimum(np.minimum(head, shaft), bit)


def _key_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (35 * np.exp(-((v + 0.08) / 0.12) ** 2))[..., None]  # a shine along the shaft
    return _mix(rgb, u < -0.2, L.colours[1])  # a plastic cover on the head


# --------------------------------------------------------------------------- light bulb: glass, screw base
def _bulb_shape(x, y, L):
    glass = sd_ellipse(x, y + 0.22 * L.hh, L.hw, 0.78 * L.hh)
    neck = sd_box(x, y - 0.45 * L.hh, 0.45 * L.hw, 0.2 * L.hh)
    base = sd_box(x, y - 0.74 * L.hh, 0.36 * L.hw, 0.2 * L.hh, r=0.05 * L.hw)
    tip = sd_ellipse(x, y - 0.95 * L.hh, 0.16 * L.hw, 0.07 * L.hh)
    return np.minimum(np.minimum(glass, neck), np.minimum(base, tip))


def _bulb_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    filament = (np.abs(u) < 0.32) & (np.abs(v + 0.12 - 0.08 * np.sin(u * 22 + L.phase)) < 0.045)
    _mix(rgb, filament | ((np.abs(np.abs(u) - 0.3) < 0.05) & (v > -0.12) & (v < 0.4)), (95, 75, 55))
    base = v > 0.5
    _mix(rgb, base, L.colours[1])
    _mix(rgb, base & (np.sin(v * 45) > 0.2), L.colours[1] * 0.7)  # the screw thread
    return _mix(rgb, v > 0.9, (50, 45, 40))


# --------------------------------------------------------------------------- fork: a handle, three tines
def _fork_shape(x, y, L):
    handle = sd_capsule(x, y, -0.95 * L.hw, 0.0, 0.2 * L.hw, 0.0, 0.24 * L.hh)
    neck = sd_box(x - 0.36 * L.hw, y, 0.14 * L.hw, 0.8 * L.hh, r=0.25 * L.hh)
    tines = np.minimum(np.minimum(sd_box(x - 0.72 * L.hw, y + 0.62 * L.hh, 0.28 * L.hw, 0.16 * L.hh),
                                  sd_box(x - 0.72 * L.hw, y, 0.28 * L.hw, 0.16 * L.hh)),
                       sd_box(x - 0.72 * L.hw, y - 0.62 * L.hh, 0.28 * L.hw, 0.16 * L.hh))
    return np.minimum(np.minimum(handle, neck), tines)


def _fork_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    rgb += (40 * np.exp(-((v + 0.3) / 0.25) ** 2) - 15 * np.clip(v, 0, 1))[..., None]  # metal highlight
    return _mix(rgb, u < -0.25, L.colours[1])  # the handle


# --------------------------------------------------------------------------- glasses: two lenses and a bridge
def _glasses_shape(x, y, L):
    left = sd_ellipse(x + 0.52 * L.hw, y, 0.46 * L.hw, 0.85 * L.hh)
    right = sd_ellipse(x - 0.52 * L.hw, y, 0.46 * L.hw, 0.85 * L.hh)
    bridge = sd_box(x, y + 0.4 * L.hh, 0.14 * L.hw, 0.11 * L.hh)
    return np.minimum(np.minimum(left, right), bridge)


def _glasses_paint(x, y, L):
    u, v = x / L.hw, y / L.hh
    rgb = _solid(x, L.colours[0])
    k = np.sqrt(((np.abs(u) - 0.52) / 0.46) ** 2 + (v / 0.85) ** 2)  # 1 on a lens's rim
    lens = k < 0.78
    _mix(rgb, lens, L.colours[1])
    return _mix(rgb, lens & (np.abs(u - v * 0.4 - 0.3 * np.sign(u)) < 0.08), (235, 240, 245))  # a reflection


# --------------------------------------------------------------------------- alarm clock: face, two bells, legs
def _clock_shape(x, y, L):
    body = sd_ellipse(x, y - 0.1 * L.hh, 0.86 * L.hw, 0.78 * L.hh)
    bells = np.minimum(sd_ellipse(x + 0.56 * L.hw, y + 0.72 * L.hh, 0.3 * L.hw, 0.2 * L.hh),
                       sd_ellipse(x - 0.56 * L.hw, y + 0.72 * L.hh, 0.3 * L.hw, 0.2 * L.hh))
    legs = np.minimum(sd_capsule(x, y, 0.45 * L.hw, 0.6 * L.hh, 0.66 * L.hw, 0.94 * L.hh, 0.07 * L.hw),
                      sd_capsule(x, y, -0.45 * L.hw, 0.6 * L.hh, -0.66 * L.hw, 0.94 * L.hh, 0.07 * L.hw))
    return np.minimum(np.minimum(body, bells), legs)


def _clock_paint(x, y, L):
    u, v = x / L.hw, y / L.hh - 0.1
    rgb = _solid(x, L.colours[0])
    face = (u / 0.7) ** 2 + (v / 0.64) ** 2 < 1
    _mix(rgb, face, (240, 238, 228))
    minute = sd_capsule(u, v, 0.0, 0.0, 0.5 * np.sin(L.phase), -0.5 * np.cos(L.phase), 0.06)
    hour = sd_capsule(u, v, 0.0, 0.0, 0.32 * np.sin(3 * L.phase), -0.32 * np.cos(3 * L.phase), 0.08)
    return _mix(rgb, face & (np.minimum(minute, hour) < 0), (25, 25, 30))


# --------------------------------------------------------------------------- hammer: a metal head on a handle
def _hammer_shape(x, y, L):
    head = sd_box(x + 0.15 * L.hw, y + 0.78 * L.hh, 0.7 * L.hw, 0.13 * L.hh, r=0.03 * L.hw)
    face = sd_box(x + 0.78 * L.hw, y + 0.78 * L.hh, 0.2 * L.hw, 0.19 * L.hh, r=0.03 * L.hw)
    claw = sd_capsule(x, y, 0.5 * L.hw, -0.8 * L.hh, 0.92 * L.hw, -0.6 * L.hh, 0.09 * L.hh)
    handle = sd_box(x, y + 0.05 * L.hh, 0.14 * L.hw, 0.93 * L.hh, r=0.1 * L.hw)
    return np.minimum(np.minimum(head, face), np.minimum(claw, handle))


def _hammer_paint(x, y, L):
    v = y / L.hh
    rgb = _solid(x, L.colours[1])
    _mix(rgb, v > 0.25, L.colours[2])  # a rubber grip on the lower half
    _mix(rgb, v < -0.6, L.colours[0])  # the metal head
    return _mix(rgb, (v < -0.6) & (np.abs(v + 0.74) < 0.04), (215, 215, 220))


_METALS = ((200, 165, 70), (185, 188, 195), (170, 120, 70))
IMAGE_ONLY_NOUNS: tuple[Noun, ...] = (
    Noun("key", (84, 40), _key_shape, _key_paint, (_METALS, ((200, 40, 40), (40, 60, 160), (30, 30, 32), (40, 140, 60))),
         0.1, 0.3),
    Noun("light bulb", (50, 80), _bulb_shape, _bulb_paint, (((250, 246, 225), (232, 238, 244), (250, 232, 170)),
                                                           ((185, 188, 195), (200, 170, 90))), 0.4, 0.4),
    Noun("fork", (90, 30), _fork_shape, _fork_paint, (((185, 188, 195), (170, 172, 180)),
                                                     ((185, 188, 195), (30, 30, 32), (120, 80, 50), (40, 90, 180))),
         0.1, 0.3),
    Noun("glasses", (96, 36), _glasses_shape, _glasses_paint, (((25, 25, 28), (110, 60, 35), (160, 30, 40), (30, 40, 90)),
                                                              ((60, 62, 70), (200, 214, 224), (120, 90, 60)))),
    Noun("alarm clock", (60, 66), _clock_shape, _clock_paint, (((200, 35, 35), (40, 80, 170), (60, 150, 80),
                                                               (230, 230, 225), (30, 30, 32)),), 0.35, 0.25),
    Noun("hammer", (64, 96), _hammer_shape, _hammer_paint, (((110, 112, 118), (150, 152, 158)),
                                                           ((170, 120, 70), (150, 100, 55)),
                                                           ((200, 40, 40), (240, 200, 40), (30, 30, 32), (170, 120, 70))),
         0.1, 0.2),
)

CLASSES: tuple[Noun, ...] = tuple(NOUNS) + IMAGE_ONLY_NOUNS  # label k is CLASSES[k]
CLASS_NAMES: tuple[str, ...] = tuple(n.name for n in CLASSES)
