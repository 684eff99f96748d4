"""Parts of the rendered objects and of the hand: the part/whole ambiguity SAM's three output masks answer.

A click on a mug's handle means the handle or the mug; on a bottle's cap, the cap or the bottle. Each part is a
region of the object's own frame (x right, y down, in pixels; `u = x / hw`, `v = y / hh` as the painters of
`vislearn.common.drawing.objects` use them), mostly the region a painter gives its own colour (a cap, a label, a
screen), so a part is what the pixels show. The pixels of the object's silhouette that no region claims form
its `rest` part: the parts of an object partition it exactly.

The hand's parts (palm, four fingers, thumb) and the arm's (forearm, sleeve) come from the hand's own geometry
(`vislearn.common.drawing.hand`): each pixel of the hand goes to the piece (palm ellipse or finger capsule) it
lies deepest in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vislearn.common.drawing.hand import HandLook, _hand_parts
from vislearn.common.drawing.objects import sd_capsule, sd_ellipse


@dataclass(frozen=True)
class Part:
    name: str
    region: Callable  # (x, y, look) -> bool array: inside the part's region (the object's frame)


@dataclass(frozen=True)
class PartSpec:
    parts: tuple[Part, ...]  # earlier parts win where regions meet
    rest: str  # the name of what is left of the silhouette


def _uv(x, y, L):
    return x / L.hw, y / L.hh


def _p(name: str, fn: Callable) -> Part:
    return Part(name, lambda x, y, L: fn(*_uv(x, y, L)))


def _glasses_lens(side: int) -> Callable:
    def lens(u, v):
        return (np.sqrt(((np.abs(u) - 0.52) / 0.46) ** 2 + (v / 0.85) ** 2) < 0.78) & (side * u > 0)
    return lens


def _clock_outside_body(x, y, L):
    return sd_ellipse(x, y - 0.1 * L.hh, 0.86 * L.hw, 0.78 * L.hh) > 0


OBJECT_PARTS: dict[str, PartSpec] = {
    "bottle": PartSpec((_p("cap", lambda u, v: v < -0.78), _p("label", lambda u, v: (v > 0.05) & (v < 0.55))), "body"),
    "mug": PartSpec((_p("handle", lambda u, v: u > 0.58),), "body"),
    "cup": PartSpec((_p("sleeve", lambda u, v: (v > -0.25) & (v < 0.4)),), "body"),
    "can": PartSpec((_p("lid", lambda u, v: v < -0.82),), "body"),
    "spoon": PartSpec((_p("bowl", lambda u, v: u > 0.3),), "handle"),
    "pen": PartSpec((_p("cap", lambda u, v: u < -0.45), _p("tip", lambda u, v: u > 0.85)), "barrel"),
    "phone": PartSpec((_p("screen", lambda u, v: (np.abs(u) < 0.86) & (v > -0.8) & (v < 0.88)),), "case"),
    "toy car": PartSpec((_p("wheel", lambda u, v: (v > 0.45) & (np.abs(u - 0.55) < 0.2)),
                         _p("wheel", lambda u, v: (v > 0.45) & (np.abs(u + 0.55) < 0.2)),
                         _p("cabin", lambda u, v: v < -0.3)), "body"),
    "apple": PartSpec((_p("stem", lambda u, v: (v < -0.62) & (np.abs(u - 0.06) < 0.12)),), "body"),
    "orange": PartSpec((_p("stem", lambda u, v: ((v < -0.72) & (np.abs(u - 0.05) < 0.16))
                           | (((u - 0.28) / 0.22) ** 2 + ((v + 0.78) / 0.1) ** 2 < 1)),), "body"),
    "book": PartSpec((_p("spine", lambda u, v: u < -0.82),), "cover"),
    "box": PartSpec((_p("tape", lambda u, v: np.abs(v + 0.55) < 0.12),), "body"),
    "sponge": PartSpec((_p("scrub layer", lambda u, v: v < -0.35),), "foam"),
    "wallet": PartSpec((_p("flap", lambda u, v: v < -0.2 + 0.25 * (1 - u ** 2)),), "body"),
    "hammer": PartSpec((_p("head", lambda u, v: v < -0.6), _p("grip", lambda u, v: v > 0.25)), "handle"),
    "key": PartSpec((_p("head", lambda u, v: u < -0.2),), "blade"),
    "light bulb": PartSpec((_p("base", lambda u, v: v > 0.5),), "glass"),
    "fork": PartSpec((_p("handle", lambda u, v: u < -0.25),), "head"),
    "glasses": PartSpec((_p("lens", _glasses_lens(-1)), _p("lens", _glasses_lens(1))), "frame"),
    "alarm clock": PartSpec((_p("face", lambda u, v: (u / 0.7) ** 2 + ((v - 0.1) / 0.64) ** 2 < 1),
                             Part("bell", lambda x, y, L: _clock_outside_body(x, y, L) & (y < 0) & (x < 0)),
                             Part("bell", lambda x, y, L: _clock_outside_body(x, y, L) & (y < 0) & (x > 0))), "body"),
}


def part_category(noun: str, part: str) -> str:
    return f"{noun} {part}"


# ------------------------------------------------------------------------------------------------------- the hand
HAND_PART_NAMES = ("palm", "finger", "finger", "finger", "finger", "thumb")  # the palm, then `_hand_parts`' order


def hand_part_labels(hand: HandLook, p, elbow, grip: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """For hand pixels (centres `xs`, `ys`), the index into HAND_PART_NAMES of the piece each lies deepest in
    (smallest signed distance): the palm ellipse or a finger / thumb capsule, as `draw_hand` shapes them."""
    p = np.asarray(p, np.float64)
    d = p - np.asarray(elbow, np.float64)
    d = d / max(np.hypot(*d), 1e-9)
    u = (xs - p[0]) * d[0] + (ys - p[1]) * d[1]
    v = -(xs - p[0]) * d[1] + (ys - p[1]) * d[0]
    sdf = [sd_ellipse(u, v, hand.palm_a, hand.palm_b)]
    sdf += [sd_capsule(xs, ys, *cap) for cap in _hand_parts(hand, p, d, grip)]
    return np.argmin(np.stack(sdf), axis=0)


def sleeve_labels(hand: HandLook, p, elbow, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """For arm pixels, True where the sleeve covers it (the sleeve's capsule, as `draw_hand` draws it)."""
    p = np.asarray(p, np.float64)
    elbow = np.asarray(elbow, np.float64)
    d = p - elbow
    d = d / max(np.hypot(*d), 1e-9)
    s0 = p - d * hand.sleeve_from
    return sd_capsule(xs, ys, s0[0], s0[1], elbow[0], elbow[1], hand.arm_r * 1.18) <= 0
