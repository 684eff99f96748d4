"""Scene rendering: a whole video's scene (placeholders, distractors, hand, camera, lighting, sensor noise)
drawn frame by frame.

The drawing primitives are scene-independent and live in `vislearn.common.drawing` (nouns, backgrounds,
lighting, the hand, objects under a pose, shadows); what depends on templates, scenes and time is here.
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

from vislearn.common.drawing.background import make_background, make_lighting
from vislearn.common.drawing.draw import ObjState, draw_object, draw_shadow, object_box, visible_object_box
from vislearn.common.drawing.hand import HAND_LAYER, HandLook, draw_hand, make_hand
from vislearn.common.drawing.objects import NOUN_BY_NAME, Look
from .templates import TEMPLATE_BY_TEXT, Ctx, Motion, appearance_curves

F32 = np.float32
OBJECT_SCALE = 1.3  # SSv2 objects are filmed from an arm's length: they fill a good part of the frame
MIN_VISIBLE_PIXELS = 4  # an object hidden (behind the hand, a distractor) or out of view gets no box


# --------------------------------------------------------------------------- camera
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
