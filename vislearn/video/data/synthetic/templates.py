"""Verbs: SSv2 templates as motion scripts for a hand and the placeholder objects.

A script turns a random draw into per-frame trajectories (hand palm centre, grip, object centres,
depth order) in frame pixels, before camera jitter. Timing, positions, reach direction and whether
the hand leaves at the end are drawn per video, because SSv2 crowd workers did each action their
own way. Most templates are told apart by how hand and objects move (so the boxes carry the
class); three groups share one motion script and differ only in what happens to the object's
pixels (squeezing, turning over, opening), as in real SSv2 where many classes look alike in boxes
alone.

Template strings are the exact SSv2 ones (`[something]` placeholders); the class name is the
template with the brackets removed, as in the SSv2 labels file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

EDGES = ("left", "right", "top", "bottom")


def interp(T: int, times, values) -> np.ndarray:
    """Keyframes -> per-frame values [T, D], eased (smoothstep) between keys, held outside them.

    Hands and objects accelerate and decelerate like people move things; sharing the same key
    times makes a held object follow the hand exactly.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64).reshape(len(times), -1)
    if len(times) == 1:
        return np.repeat(values, T, axis=0)
    times = times + np.arange(len(times)) * 1e-6  # strictly increasing
    t = np.arange(T, dtype=np.float64)
    idx = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    s = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
    s = s * s * (3 - 2 * s)
    return values[idx] + (values[idx + 1] - values[idx]) * s[:, None]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / max(float(np.hypot(*v)), 1e-9)


@dataclass
class Ctx:
    """What a script may know: the random generator, frame geometry, object and hand sizes."""

    rng: np.random.Generator
    T: int
    W: int
    H: int
    S: float  # pixels per pixel-at-240p: sizes scale with the frame height
    sizes: list[tuple[float, float]]  # placeholder half extents (ehw, ehh)
    grounds: list[float]  # y of the table surface under each placeholder (its bottom edge)
    reach: float  # palm centre to fingertips, pixels
    palm: float  # half width of the palm, pixels

    def phases(self, weights, start=(0.0, 0.12), end=(0.86, 1.0)) -> np.ndarray:
        """Key times (frames) for consecutive phases with random relative durations."""
        t0 = self.rng.uniform(*start) * (self.T - 1)
        t1 = self.rng.uniform(*end) * (self.T - 1)
        w = np.asarray(weights, np.float64) * self.rng.uniform(0.75, 1.3, len(weights))
        c = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
        return t0 + c * (t1 - t0)

    def edge(self, choices, p) -> str:
        return str(choices[int(self.rng.choice(len(choices), p=p))])

    def elbow(self, edge: str, near) -> np.ndarray:
        """A fixed point outside the frame the forearm comes from (people reach in from the side
        they sit on, mostly the bottom or a side of the frame in SSv2)."""
        W, H, rng = self.W, self.H, self.rng
        x, y = float(near[0]), float(near[1])
        if edge == "bottom":
            return np.array([x + rng.uniform(-0.25, 0.25) * W, H + 0.9 * H])
        if edge == "top":
            return np.array([x + rng.uniform(-0.25, 0.25) * W, -0.9 * H])
        if edge == "left":
            return np.array([-0.9 * H, y + rng.uniform(-0.1, 0.4) * H])
        return np.array([W + 0.9 * H, y + rng.uniform(-0.1, 0.4) * H])

    def off(self, elbow, target, edge: str, extra: float = 0.0) -> np.ndarray:
        """Palm position just outside `edge` on the line elbow -> target (the hand enters along its arm)."""
        elbow, target = np.asarray(elbow, np.float64), np.asarray(target, np.float64)
        v = target - elbow
        m = self.reach + self.palm + 6 * self.S + extra
        if edge in ("bottom", "top"):
            goal = self.H + m if edge == "bottom" else -m
            lam = (goal - elbow[1]) / (v[1] if abs(v[1]) > 1e-6 else 1e-6)
        else:
            goal = -m if edge == "left" else self.W + m
            lam = (goal - elbow[0]) / (v[0] if abs(v[0]) > 1e-6 else 1e-6)
        return elbow + lam * v

    def grip_palm(self, contact, elbow, back: float) -> np.ndarray:
        """Palm centre for a hand whose fingers close on `contact` (palm `back` * reach behind it)."""
        d = _unit(np.asarray(contact, np.float64) - elbow)
        return np.asarray(contact, np.float64) - d * back * self.reach

    def rest_or_leave(self, elbow, p, edge: str, leave_p: float = 0.75) -> np.ndarray:
        """Where the hand ends: out of view (most SSv2 clips) or pulled back a little and resting."""
        if self.rng.random() < leave_p:
            return self.off(elbow, p, edge)
        return np.asarray(p, np.float64) + _unit(elbow - np.asarray(p)) * self.rng.uniform(0.05, 0.15) * self.H


@dataclass
class Motion:
    """Per-frame trajectories of one video (frame pixels, before camera jitter)."""

    hand: np.ndarray  # [T,2] palm centre
    grip: np.ndarray  # [T] 0 open hand .. 1 closed on an object
    elbow: np.ndarray  # [2] where the forearm comes from (outside the frame)
    edge: str  # frame edge the hand enters from
    obj: np.ndarray  # [n,T,2] extent centre of each placeholder
    z: np.ndarray  # [n,T] drawing order key (larger = nearer the camera)
    ground: np.ndarray  # [n,T] y of the surface under the object (for its shadow)
    progress: np.ndarray  # [T] 0..1 progress of the manipulation (drives appearance changes)
    angle: np.ndarray | None = None  # [n,T] in-plane tilt (radians)


def _motion(ctx: Ctx, hand, grip, elbow, edge, obj, progress=None, z=None, ground=None, angle=None) -> Motion:
    n = len(obj)
    obj = np.stack([np.asarray(o, np.float64) for o in obj])
    if ground is None:
        ground = np.stack([np.full(ctx.T, g) for g in ctx.grounds[:n]])
    if z is None:
        z = np.array(ground, np.float64)
    return Motion(hand=np.asarray(hand, np.float64), grip=np.asarray(grip, np.float64).reshape(-1),
                  elbow=np.asarray(elbow, np.float64), edge=edge, obj=obj, z=np.asarray(z, np.float64),
                  ground=np.asarray(ground, np.float64),
                  progress=np.zeros(ctx.T) if progress is None else np.asarray(progress, np.float64).reshape(-1),
                  angle=None if angle is None else np.asarray(angle, np.float64))


def _const(T, v):
    return np.repeat(np.asarray(v, np.float64)[None], T, axis=0)


# --------------------------------------------------------------------------- one object, boxes move differently
def push(ctx: Ctx, sign: int) -> Motion:
    """Pushing left->right (sign +1) or right->left: the open hand meets the object's side and slides it."""
    rng, W, T = ctx.rng, ctx.W, ctx.T
    ehw, ehh = ctx.sizes[0]
    cy = ctx.grounds[0] - ehh
    D = rng.uniform(0.22, 0.42) * W
    x0 = rng.uniform(0.08 * W, max(0.08 * W, 0.98 * W - D))  # may end partly out of view, as real pushes do
    if sign < 0:
        x0 = W - x0
    edge = ctx.edge(("left", "bottom") if sign > 0 else ("right", "bottom"), (0.55, 0.45))
    contact = np.array([x0 - sign * ehw, cy + 0.25 * ehh])
    elbow = ctx.elbow(edge, contact)
    p0 = contact - np.array([sign * ctx.palm * 0.85, 0.0])
    p1 = p0 + np.array([sign * D, 0.0])
    t = ctx.phases([1.0, 1.5, 0.9])
    hand = interp(T, t, [ctx.off(elbow, p0, edge), p0, p1, ctx.rest_or_leave(elbow, p1, edge)])
    obj = interp(T, t[1:3], [[x0, cy], [x0 + sign * D, cy]])
    return _motion(ctx, hand, np.full(T, 0.15), elbow, edge, [obj])


def _fall(T: int, y_from: float, y_to: float, t_release: float, g: float, bounce: float) -> tuple[np.ndarray, float]:
    """Free fall from rest at t_release (gravity g px/frame^2) and a small bounce on landing."""
    t = np.arange(T, dtype=np.float64)
    dt = np.maximum(t - t_release, 0.0)
    y = np.minimum(y_from + 0.5 * g * dt * dt, y_to)
    t_land = t_release + np.sqrt(2 * max(y_to - y_from, 0.0) / g)
    after = t - t_land
    hop = np.where((after > 0) & (after < 3), np.sin(np.pi * np.clip(after, 0, 3) / 3) * bounce, 0.0)
    return y - hop, t_land


def gravity(ctx: Ctx) -> float:
    """g in pixels per frame^2: 9.81 m/s^2 at 12 fps with ~480 px per metre on a 240-px-high
    table-top view (an arm's length from the camera)."""
    return 9.81 * 480 * ctx.S / 144


def lift(ctx: Ctx, drop: bool) -> Motion:
    """Lifting up completely, then holding (drop=False) or letting it fall back (drop=True)."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    ehw, ehh = ctx.sizes[0]
    x0 = rng.uniform(0.2, 0.8) * W
    cy = ctx.grounds[0] - ehh
    edge = ctx.edge(("top", "left", "right", "bottom"), (0.3, 0.3, 0.3, 0.1))
    contact = np.array([x0, cy - 0.5 * ehh])
    elbow = ctx.elbow(edge, contact)
    p = ctx.grip_palm(contact, elbow, 0.2)
    L = rng.uniform(0.22, 0.42) * H
    up = p - [0.0, L]
    if not drop:
        t = ctx.phases([1.0, 0.35, 1.2, 1.0])
        sway = up + rng.uniform(-4, 4, 2) * ctx.S
        hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, up, sway])
        obj = interp(T, t[2:], [[x0, cy], [x0, cy - L], sway - p + [x0, cy]])
        grip = interp(T, t[1:3], [[0.0], [1.0]])
        z = np.where(np.arange(T) >= t[2], ctx.grounds[0] + 1000, ctx.grounds[0])
        return _motion(ctx, hand, grip, elbow, edge, [obj], z=[z])
    t = ctx.phases([1.0, 0.35, 1.1, 0.4, 1.0, 0.8])
    hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, up, up, up + [0, -4 * ctx.S],
                         ctx.rest_or_leave(elbow, up, edge, 0.7)])
    obj = interp(T, t[2:4], [[x0, cy], [x0, cy - L]])
    y, _ = _fall(T, cy - L, cy, t[4], gravity(ctx), 0.06 * L)
    after = np.arange(T) > t[4]
    obj[after, 1] = y[after]
    grip = interp(T, [t[1], t[2], t[4], t[4] + 1], [[0.0], [1.0], [1.0], [0.2]])
    z = np.where((np.arange(T) >= t[2]) & ~after, ctx.grounds[0] + 1000, ctx.grounds[0])
    return _motion(ctx, hand, grip, elbow, edge, [obj], z=[z])


def _carry_in(ctx: Ctx, rest, ehw, ehh, ground_z, weights=(1.3, 0.7, 0.3, 0.9)):
    """The hand brings an object in from a frame edge and sets it down at `rest` (its centre)."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    rest = np.asarray(rest, np.float64)
    edge = ctx.edge(("top", "left", "right"), (0.4, 0.3, 0.3))
    contact = rest - [0.0, 0.5 * ehh]
    elbow = ctx.elbow(edge, contact)
    p_rest = ctx.grip_palm(contact, elbow, 0.2)
    offset = p_rest - rest
    hover = rest - [rng.uniform(-0.1, 0.1) * W, rng.uniform(0.12, 0.25) * H]
    m = ctx.reach + ctx.palm
    if edge == "top":
        start = np.array([hover[0] + rng.uniform(-0.1, 0.1) * W, -ehh - m])
    elif edge == "left":
        start = np.array([-ehw - m, hover[1] - rng.uniform(0.0, 0.1) * H])
    else:
        start = np.array([W + ehw + m, hover[1] - rng.uniform(0.0, 0.1) * H])
    t = ctx.phases(list(weights), start=(0.0, 0.08))
    obj = interp(T, t[:3], [start, hover, rest])
    hand = interp(T, t, [start + offset, hover + offset, p_rest, p_rest,
                         ctx.rest_or_leave(elbow, p_rest, edge, 0.8)])
    grip = interp(T, t[2:4], [[1.0], [0.1]])
    z = np.where(np.arange(T) < t[3], ground_z + 1000, ground_z)
    return hand, grip, elbow, edge, obj, z, t


def put_on_surface(ctx: Ctx) -> Motion:
    """Putting on a surface: the object arrives in the hand from outside the view and is set down."""
    ehw, ehh = ctx.sizes[0]
    rest = [ctx.rng.uniform(0.2, 0.8) * ctx.W, ctx.grounds[0] - ehh]
    hand, grip, elbow, edge, obj, z, _ = _carry_in(ctx, rest, ehw, ehh, ctx.grounds[0])
    return _motion(ctx, hand, grip, elbow, edge, [obj], z=[z])


def pretend_pick(ctx: Ctx) -> Motion:
    """Pretending to pick up: the hand closes on the object and rises, the object stays."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    ehw, ehh = ctx.sizes[0]
    x0 = rng.uniform(0.2, 0.8) * W
    cy = ctx.grounds[0] - ehh
    edge = ctx.edge(("top", "left", "right", "bottom"), (0.3, 0.3, 0.3, 0.1))
    contact = np.array([x0, cy - 0.5 * ehh])
    elbow = ctx.elbow(edge, contact)
    p = ctx.grip_palm(contact, elbow, 0.2)
    up = p - [0.0, rng.uniform(0.15, 0.35) * H]
    t = ctx.phases([1.0, 0.35, 1.0, 0.5, 0.9])
    hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, up, up, ctx.rest_or_leave(elbow, up, edge, 0.6)])
    grip = interp(T, t[1:3], [[0.0], [1.0]])
    return _motion(ctx, hand, grip, elbow, edge, [_const(T, [x0, cy])])


def take(ctx: Ctx) -> Motion:
    """Taking from somewhere: grasp, lift a little, carry it out of the view."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    ehw, ehh = ctx.sizes[0]
    x0 = rng.uniform(0.25, 0.75) * W
    cy = ctx.grounds[0] - ehh
    edge = ctx.edge(("left", "right", "top", "bottom"), (0.3, 0.3, 0.25, 0.15))
    contact = np.array([x0, cy - 0.5 * ehh])
    elbow = ctx.elbow(edge, contact)
    p = ctx.grip_palm(contact, elbow, 0.2)
    offset = p - [x0, cy]
    lifted = np.array([x0 + rng.uniform(-0.05, 0.05) * W, cy - rng.uniform(0.08, 0.2) * H])
    m = max(ehw, ehh) + 2 * ctx.reach
    out = {"left": [-m, lifted[1]], "right": [W + m, lifted[1]],
           "top": [lifted[0], -m], "bottom": [lifted[0], H + m]}[edge]
    t = ctx.phases([1.0, 0.35, 0.6, 1.2], end=(0.7, 0.95))
    obj = interp(T, t[2:], [[x0, cy], lifted, out])
    hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, lifted + offset, np.asarray(out) + offset])
    grip = interp(T, t[1:3], [[0.0], [1.0]])
    z = np.where(np.arange(T) >= t[2], ctx.grounds[0] + 1000, ctx.grounds[0])
    return _motion(ctx, hand, grip, elbow, edge, [obj], z=[z])


# --------------------------------------------------------------------------- two objects
def _two_on_table(ctx: Ctx):
    (wa, ha), (wb, hb) = ctx.sizes[:2]
    return (wa, ha, ctx.grounds[0] - ha), (wb, hb, ctx.grounds[1] - hb)


def closer(ctx: Ctx) -> Motion:
    """Moving A and B closer to each other: one hand pushes A towards B, then B towards A."""
    rng, W, H, T = ctx.rng, ctx.W, ctx.H, ctx.T
    (wa, ha, ya), (wb, hb, yb) = _two_on_table(ctx)
    a_left, b_right = rng.uniform(0.03, 0.15) * W, rng.uniform(0.85, 0.97) * W
    gap = (b_right - 2 * wb) - (a_left + 2 * wa)
    if gap < 0.18 * W:  # big objects: start them partly out of view rather than overlapping
        a_left -= (0.18 * W - gap) / 2
        b_right += (0.18 * W - gap) / 2
        gap = 0.18 * W
    xa, xb = a_left + wa, b_right - wb
    da, db = rng.uniform(0.3, 0.42) * gap, rng.uniform(0.3, 0.42) * gap
    edge = ctx.edge(("bottom", "top"), (0.7, 0.3))
    elbow = ctx.elbow(edge, [W / 2, (ya + yb) / 2])
    pa0 = np.array([xa - wa - ctx.palm * 0.85, ya + 0.25 * ha])
    pb0 = np.array([xb + wb + ctx.palm * 0.85, yb + 0.25 * hb])
    pa1, pb1 = pa0 + [da, 0], pb0 - [db, 0]
    a_first = rng.random() < 0.5
    t = ctx.phases([1.0, 1.2, 0.5, 0.5, 1.2, 0.8], start=(0.0, 0.08), end=(0.9, 1.0))
    first, second = ((pa0, pa1), (pb0, pb1)) if a_first else ((pb0, pb1), (pa0, pa1))
    via = (first[1] + second[0]) / 2 - [0, rng.uniform(0.1, 0.2) * H]
    hand = interp(T, t, [ctx.off(elbow, first[0], edge), first[0], first[1], via, second[0], second[1],
                         ctx.rest_or_leave(elbow, second[1], edge)])
    ta, tb = (t[1:3], t[4:6]) if a_first else (t[4:6], t[1:3])
    obj_a = interp(T, ta, [[xa, ya], [xa + da, ya]])
    obj_b = interp(T, tb, [[xb, yb], [xb - db, yb]])
    return _motion(ctx, hand, np.full(T, 0.15), elbow, edge, [obj_a, obj_b])


def apart(ctx: Ctx) -> Motion:
    """Moving A and B away from each other: grasp A and draw it aside, then B the other way."""
    rng, W, T = ctx.rng, ctx.W, ctx.T
    (wa, ha, ya), (wb, hb, yb) = _two_on_table(ctx)
    mid = rng.uniform(0.4, 0.6) * W
    gap = rng.uniform(0.01, 0.05) * W
    xa, xb = mid - gap / 2 - wa, mid + gap / 2 + wb
    da, db = rng.uniform(0.18, 0.32) * W, rng.uniform(0.18, 0.32) * W
    edge = ctx.edge(("bottom", "top"), (0.6, 0.4))
    elbow = ctx.elbow(edge, [mid, (ya + yb) / 2])
    pa0 = ctx.grip_palm([xa, ya - 0.5 * ha], elbow, 0.2)
    pb0 = ctx.grip_palm([xb, yb - 0.5 * hb], elbow, 0.2)
    pa1, pb1 = pa0 - [da, 0], pb0 + [db, 0]
    a_first = rng.random() < 0.5
    t = ctx.phases([1.0, 0.3, 1.1, 0.9, 0.3, 1.1, 0.8], start=(0.0, 0.08), end=(0.9, 1.0))
    first, second = ((pa0, pa1), (pb0, pb1)) if a_first else ((pb0, pb1), (pa0, pa1))
    hand = interp(T, t, [ctx.off(elbow, first[0], edge), first[0], first[0], first[1], second[0], second[0],
                         second[1], ctx.rest_or_leave(elbow, second[1], edge)])
    grip = interp(T, t, [[0.0], [0.2], [1.0], [1.0], [0.2], [1.0], [1.0], [0.2]])
    ta, tb = (t[2:4], t[5:7]) if a_first else (t[5:7], t[2:4])
    obj_a = interp(T, ta, [[xa, ya], [xa - da, ya]])
    obj_b = interp(T, tb, [[xb, yb], [xb + db, yb]])
    return _motion(ctx, hand, grip, elbow, edge, [obj_a, obj_b])


def put_onto(ctx: Ctx) -> Motion:
    """Putting A onto B: A arrives in the hand and is set down on top of B."""
    rng, W, T = ctx.rng, ctx.W, ctx.T
    (wa, ha, _), (wb, hb, yb) = _two_on_table(ctx)
    xb = rng.uniform(0.3, 0.7) * W
    top_b = yb - hb
    rest = [xb + rng.uniform(-0.25, 0.25) * wb, top_b - ha]
    hand, grip, elbow, edge, obj_a, z_a, _ = _carry_in(ctx, rest, wa, ha, ctx.grounds[1] + 1)
    ground = [np.full(T, top_b), np.full(T, ctx.grounds[1])]
    return _motion(ctx, hand, grip, elbow, edge, [obj_a, _const(T, [xb, yb])], z=[z_a, ground[1]], ground=ground)


def put_next_to(ctx: Ctx) -> Motion:
    """Putting A next to B: A arrives in the hand and is set down beside B on the table."""
    rng, W, T = ctx.rng, ctx.W, ctx.T
    (wa, ha, _), (wb, hb, yb) = _two_on_table(ctx)
    xb = rng.uniform(0.25, 0.75) * W
    side = 1 if rng.random() < 0.5 else -1
    dist = wb + wa + rng.uniform(0.02, 0.08) * W
    if not (0.5 * wa < xb + side * dist < W - 0.5 * wa):
        side = -side
    ga = ctx.grounds[1] + rng.uniform(-0.03, 0.03) * ctx.H
    rest = [xb + side * dist, ga - ha]
    hand, grip, elbow, edge, obj_a, z_a, _ = _carry_in(ctx, rest, wa, ha, ga)
    ground = [np.full(T, ga), np.full(T, ctx.grounds[1])]
    return _motion(ctx, hand, grip, elbow, edge, [obj_a, _const(T, [xb, yb])], z=[z_a, ground[1]], ground=ground)


# --------------------------------------------------------------------------- one object, same boxes, different pixels
def manipulate(ctx: Ctx, kind: str) -> Motion:
    """The hand takes hold of the object in place and works on it; `progress` spans the work.

    kind 'hold' (squeezing, front grasp), 'lid' (opening/closing, grasp at the top, twisting
    wiggle), 'turn' (grasp, lift a little, turn, set down). The script never sees which template
    of its group it serves, so the templates of a group get identical boxes for the same draw.
    """
    rng, W, H, T, S = ctx.rng, ctx.W, ctx.H, ctx.T, ctx.S
    ehw, ehh = ctx.sizes[0]
    x0 = rng.uniform(0.25, 0.75) * W
    cy = ctx.grounds[0] - ehh
    edge = ctx.edge(("bottom", "left", "right", "top"), (0.4, 0.2, 0.2, 0.2))
    frames = np.arange(T, dtype=np.float64)
    if kind == "turn":
        contact = np.array([x0, cy - 0.3 * ehh])
        elbow = ctx.elbow(edge, contact)
        p = ctx.grip_palm(contact, elbow, 0.3)
        up = p - [0.0, rng.uniform(0.08, 0.16) * H]
        t = ctx.phases([1.0, 0.35, 0.6, 1.2, 0.6, 0.35, 0.9])
        leave = ctx.rest_or_leave(elbow, p, edge)
        hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, up, up, p, p, leave])
        obj = interp(T, t[2:6], [[x0, cy], up - p + [x0, cy], up - p + [x0, cy], [x0, cy]])
        grip = interp(T, t[1:7], [[0.0], [1.0], [1.0], [1.0], [1.0], [0.1]])
        progress = interp(T, t[3:5], [[0.0], [1.0]])
        z = np.where((frames >= t[2]) & (frames < t[5]), ctx.grounds[0] + 1000, ctx.grounds[0])
        return _motion(ctx, hand, grip, elbow, edge, [obj], progress=progress, z=[z])
    contact = np.array([x0, cy - (0.7 if kind == "lid" else 0.0) * ehh])
    elbow = ctx.elbow(edge, contact)
    p = ctx.grip_palm(contact, elbow, 0.25 if kind == "lid" else 0.3)
    t = ctx.phases([1.0, 0.4, 1.4, 0.4, 0.9])
    hand = interp(T, t, [ctx.off(elbow, p, edge), p, p, p, p, ctx.rest_or_leave(elbow, p, edge)])
    # while working: a squeezing hand trembles a little, a hand twisting a lid wiggles sideways
    inside = (frames > t[2]) & (frames < t[3])
    period = rng.uniform(3.0, 5.0)
    amp = (2.5 if kind == "lid" else 1.2) * S
    hand[inside, 0] += amp * np.sin(2 * np.pi * (frames[inside] - t[2]) / period)
    grip = interp(T, t[1:5], [[0.0], [1.0], [1.0], [0.1]])
    progress = interp(T, t[2:4], [[0.0], [1.0]])
    return _motion(ctx, hand, grip, elbow, edge, [_const(T, [x0, cy])], progress=progress)


# --------------------------------------------------------------------------- the template table
@dataclass(frozen=True)
class Template:
    text: str  # exact SSv2 template, e.g. "Pushing [something] from left to right"
    objects: int  # placeholders
    motion: str  # the motion script; templates sharing it differ only in appearance
    script: Callable[[Ctx], Motion]
    appearance: str = "none"  # what happens to object 0's pixels along `progress`

    @property
    def class_name(self) -> str:
        return self.text.replace("[", "").replace("]", "")

    def label(self, nouns: list[str]) -> str:
        """SSv2 label: the template with the placeholders filled, lowercase."""
        text = self.text
        for noun in nouns:
            text = text.replace("[something]", noun, 1)
        return text.lower()


def appearance_curves(appearance: str, progress: np.ndarray):
    """(flip, squeeze, open) per frame for the manipulated object.

    flip: vertical scale (cos of the turning angle; negative = upside down); squeeze: 0..1
    compression while squeezed, springing back after; open: 0 closed .. 1 open.
    """
    p = np.asarray(progress, np.float64)
    one, zero = np.ones_like(p), np.zeros_like(p)
    if appearance == "flip":  # a full half-turn: ends upside down
        return np.cos(np.pi * p), zero, zero
    if appearance == "half_flip":  # starts turning, comes back (same |scale|, so same box)
        return np.abs(np.cos(np.pi * p)), zero, zero
    if appearance == "squeeze":
        return one, np.sin(np.pi * p), zero
    if appearance == "open":
        return one, zero, p
    if appearance == "close":
        return one, zero, 1.0 - p
    if appearance == "none":
        return one, zero, zero
    raise ValueError(f"unknown appearance {appearance!r}")


TEMPLATES: tuple[Template, ...] = (
    Template("Pushing [something] from left to right", 1, "push_right", lambda c: push(c, +1)),
    Template("Pushing [something] from right to left", 1, "push_left", lambda c: push(c, -1)),
    Template("Lifting [something] up completely without letting it drop down", 1, "lift", lambda c: lift(c, False)),
    Template("Lifting [something] up completely, then letting it drop down", 1, "lift_drop", lambda c: lift(c, True)),
    Template("Putting [something] on a surface", 1, "put", put_on_surface),
    Template("Pretending to pick [something] up", 1, "pretend_pick", pretend_pick),
    Template("Taking [something] from somewhere", 1, "take", take),
    Template("Moving [something] and [something] closer to each other", 2, "closer", closer),
    Template("Moving [something] and [something] away from each other", 2, "apart", apart),
    Template("Putting [something] onto [something]", 2, "put_onto", put_onto),
    Template("Putting [something] next to [something]", 2, "put_next_to", put_next_to),
    # appearance-only groups: identical motion scripts, the object's pixels tell them apart
    Template("Squeezing [something]", 1, "hold", lambda c: manipulate(c, "hold"), "squeeze"),
    Template("Pretending to squeeze [something]", 1, "hold", lambda c: manipulate(c, "hold"), "none"),
    Template("Turning [something] upside down", 1, "turn", lambda c: manipulate(c, "turn"), "flip"),
    Template("Pretending to turn [something] upside down", 1, "turn", lambda c: manipulate(c, "turn"), "half_flip"),
    Template("Opening [something]", 1, "lid", lambda c: manipulate(c, "lid"), "open"),
    Template("Closing [something]", 1, "lid", lambda c: manipulate(c, "lid"), "close"),
    Template("Pretending to open [something] without actually opening it", 1, "lid",
             lambda c: manipulate(c, "lid"), "none"),
)

TEMPLATE_BY_TEXT = {t.text: t for t in TEMPLATES}


def appearance_groups() -> dict[str, list[str]]:
    """Motion scripts shared by several templates -> those templates (they differ only in pixels)."""
    groups: dict[str, list[str]] = {}
    for t in TEMPLATES:
        groups.setdefault(t.motion, []).append(t.text)
    return {k: v for k, v in groups.items() if len(v) > 1}
