"""A seeded renderer of still images with exact instance and part masks, for training and testing SAM on a CPU.

Image `index` of split `split` of seed `seed` is drawn from its own generator, seeded with the entropy words
(seed, split number, index, STREAM): any worker count, order or subset gives the same image and masks.

What an image shows (all drawn per image, with the house's drawing code, `vislearn.common.drawing`, and the
image set's instances and tables, `vislearn.backbones.imagesets.render`):
- a table (wood, cloth, stone, check, carpet; a wall with clutter, or a top-down view): a random crop of the
  image set's background bank for (seed, split, size), flipped and colour-jittered;
- 2-6 objects of the 24 classes (`vislearn.backbones.imagesets.nouns.CLASSES`), longest side 20-50% of the
  image, any rotation, turned over or not, each with a contact shadow; drawn back to front (the lower in the
  image, the nearer), so they hide each other; an object that would leave less than `KEEP` of one behind it
  in view is placed elsewhere (3 tries) or left out;
- a hand with its forearm and sleeve (`HAND_PROBABILITY`), reaching in from any side over one object, in front;
- lighting (exposure, colour cast, light from one side, vignetting) and sensor noise.

The masks are exact: every drawn shape writes its id where it covers at least half a pixel (the anti-aliased
edge's midpoint), later shapes over earlier ones; an instance's mask is where its id is left, its visible
region. Annotated (`Scene.instances`, in drawing order, each whole followed by its parts):
- each object (`level` "whole", `category` its class) with at least `min_area` visible pixels;
- its parts (`level` "part", `category` e.g. "mug handle", `parent` the whole's id), `vislearn.segment.data.parts`:
  the parts partition the whole's visible region; those with at least `min_part_area` pixels are annotated, and
  only when two or more are (a single part would repeat the whole);
- the hand (palm and fingers; parts palm, finger x4, thumb) and the arm (forearm and sleeve; parts forearm, sleeve).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from vislearn.backbones.imagesets.nouns import CLASSES
from vislearn.backbones.imagesets.render import _half_extent, background_bank, make_look, noise_bank, table_canvas
from vislearn.common.drawing.draw import ObjState, draw_object, draw_shadow
from vislearn.common.drawing.hand import ARM_LAYER, HAND_LAYER, draw_hand, make_hand
from vislearn.common.drawing.objects import Look, Noun

from .parts import HAND_PART_NAMES, OBJECT_PARTS, hand_part_labels, part_category, sleeve_labels

F32 = np.float32
VERSION = "1"  # of the pixels and masks: any change to what an image shows (here or in the drawing code) changes it
SPLITS = ("train", "val", "test")
STREAM = 0x5A1B26  # the last entropy word: this generator's streams never meet another seeded with (seed, ...)
HAND_PROBABILITY = 0.6
KEEP = 0.4  # an object (or the hand) drawn later leaves at least this fraction of each earlier one in view
OBJECTS = (2, 6)  # objects per image, both ends included
SIZES = (0.2, 0.5)  # an object's longest side, as a fraction of the image side


def min_areas(size: int) -> tuple[int, int]:
    """The smallest visible area (pixels) of an annotated whole and of an annotated part at image side `size`:
    1/2000 and 1/4000 of the image (33 and 16 pixels at 256 px), at least 12 and 6."""
    return max(12, round(size * size / 2000)), max(6, round(size * size / 4000))


@dataclass
class Instance:
    id: int  # unique within its image, from 1
    category: str
    level: str  # "whole" | "part"
    parent: int | None  # the whole's id for a part
    mask: np.ndarray  # bool [H, W]: the visible pixels


@dataclass
class Scene:
    image: np.ndarray  # uint8 [H, W, 3] RGB
    instances: list[Instance]
    layers: np.ndarray  # uint8 [H, W]: what each pixel shows (0 table, k the k-th object drawn, 250 hand, 251 arm)
    objects: list[tuple[Look, ObjState]]  # the objects drawn, back to front (object k is objects[k - 1])


def rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index, STREAM]))


# ------------------------------------------------------------------------------------------------------ drawing
def _draw_keeping(canvas: np.ndarray, idbuf: np.ndarray, draw) -> bool:
    """Run `draw()` (it paints `canvas` and writes ids into `idbuf`); undo it when it leaves less than KEEP of
    any shape already drawn in view."""
    before = np.bincount(idbuf.ravel(), minlength=256)
    saved, saved_ids = canvas.copy(), idbuf.copy()
    draw()
    after = np.bincount(idbuf.ravel(), minlength=256)
    drawn = before[1:] > 0
    if np.all(after[1:][drawn] >= KEEP * before[1:][drawn]):
        return True
    canvas[...] = saved
    idbuf[...] = saved_ids
    return False


def _region_noun(noun: Noun, region) -> Noun:
    """A noun whose silhouette is a part's region (inside: -1, outside: +1) and whose paint is nothing: drawn
    with `draw_object` under the object's own look and pose, it marks the region in the same pixels."""
    def shape(x, y, L):
        return np.where(region(x, y, L), F32(-1), F32(1))

    def paint(x, y, L):
        return np.zeros(np.broadcast(x, y).shape + (3,), F32)

    return Noun(noun.name, noun.size, shape, paint, ())


def _region_mask(look: Look, st: ObjState, region, scratch: np.ndarray, scratch_ids: np.ndarray) -> np.ndarray:
    masks: dict = {}
    draw_object(scratch, scratch_ids, 1, dataclasses.replace(look, noun=_region_noun(look.noun, region)), st,
                masks, "part")
    return masks.get("part", np.zeros(scratch_ids.shape, bool))


def _sample_pose(rng: np.random.Generator, look: Look, n: int) -> ObjState:
    flip = (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.8, 1.0)
    angle = rng.normal(0.0, 0.35) if rng.random() < 0.6 else rng.uniform(-np.pi, np.pi)  # mostly upright
    return ObjState(float(rng.uniform(0.08, 0.92) * n), float(rng.uniform(0.08, 0.92) * n), float(angle), flip)


# ------------------------------------------------------------------------------------------------------ a scene
def render_scene(seed: int, split: str, index: int, size: int = 256) -> Scene:
    """Image `index` of `split` and its annotated instances; depends on (seed, split, index, size) only."""
    rng = rng_for(seed, split, index)
    n = size
    bank = background_bank(seed, split, n)
    canvas, idbuf, lighting = table_canvas(rng, bank, n)
    S = n / 240.0

    # objects, back to front: the lower in the image, the nearer
    objects = []
    for _ in range(int(rng.integers(OBJECTS[0], OBJECTS[1] + 1))):
        noun = CLASSES[int(rng.integers(len(CLASSES)))]
        look = make_look(noun, rng, float(rng.uniform(*SIZES)) * n)
        objects.append((look, _sample_pose(rng, look, n), rng.random() < 0.7))
    objects.sort(key=lambda o: o[1].y + _half_extent(o[0], o[1])[1])
    drawn: list[tuple[int, Look, ObjState]] = []
    for look, st, shadow in objects:
        layer = len(drawn) + 1
        for attempt in range(3):
            if attempt:
                st = dataclasses.replace(st, x=float(rng.uniform(0.08, 0.92) * n), y=float(rng.uniform(0.08, 0.92) * n))

            def draw(look=look, st=st, shadow=shadow, layer=layer):
                if shadow:
                    ground = st.y + _half_extent(look, st)[1]
                    draw_shadow(canvas, look, st.x, ground, ground, S * 1.6)
                draw_object(canvas, idbuf, layer, look, st)

            if _draw_keeping(canvas, idbuf, draw):
                drawn.append((layer, look, st))
                break

    hand = None
    if drawn and rng.random() < HAND_PROBABILITY:  # reaching in over one object, from any side
        _, look, st = drawn[int(rng.integers(len(drawn)))]
        hx, hy = _half_extent(look, st)
        look_h = make_hand(rng, S * rng.uniform(0.9, 1.3))
        theta, grip = rng.uniform(0, 2 * np.pi), float(rng.uniform(0.0, 0.7))
        away = np.array([np.cos(theta), np.sin(theta)])
        reach = max(hx, hy) * rng.uniform(0.3, 0.9) + 0.3 * look_h.palm_a
        for _ in range(3):  # farther out each time it would hide too much
            p = np.array([st.x, st.y]) + away * reach
            elbow = p + away * 3 * n
            if _draw_keeping(canvas, idbuf, lambda: draw_hand(canvas, idbuf, look_h, p, elbow, grip, None)):
                hand = (look_h, p, elbow, grip)
                break
            reach += 0.35 * max(hx, hy)

    canvas *= lighting
    k, ny, nx = (int(v) for v in rng.integers(0, (4, 17, 17)))
    noise = noise_bank(n)
    canvas += noise[k, ny:ny + n, nx:nx + n] * F32(rng.uniform(1.0, 4.0))
    np.clip(canvas, 0, 255, out=canvas)
    return Scene(canvas.astype(np.uint8), _annotate(idbuf, drawn, hand, n), idbuf, [(lk, st) for _, lk, st in drawn])


def _annotate(idbuf: np.ndarray, drawn, hand, n: int) -> list[Instance]:
    min_whole, min_part = min_areas(n)
    out: list[Instance] = []
    scratch, scratch_ids = np.zeros((n, n, 3), F32), np.zeros((n, n), np.uint8)

    def add(category, level, parent, mask) -> int:
        out.append(Instance(len(out) + 1, category, level, parent, mask))
        return len(out)

    def add_parts(parent: int, parts: list[tuple[str, np.ndarray]]) -> None:
        kept = [(c, m) for c, m in parts if np.count_nonzero(m) >= min_part]
        if len(kept) >= 2:
            for c, m in kept:
                add(c, "part", parent, m)

    for layer, look, st in drawn:
        visible = idbuf == layer
        if np.count_nonzero(visible) < min_whole:
            continue
        whole = add(look.noun.name, "whole", None, visible)
        spec = OBJECT_PARTS.get(look.noun.name)
        if spec is None:
            continue
        left = visible.copy()
        parts = []
        for part in spec.parts:
            m = left & _region_mask(look, st, part.region, scratch, scratch_ids)
            left &= ~m
            parts.append((part_category(look.noun.name, part.name), m))
        parts.append((part_category(look.noun.name, spec.rest), left))
        add_parts(whole, parts)

    if hand is not None:
        look_h, p, elbow, grip = hand
        for layer, category in ((HAND_LAYER, "hand"), (ARM_LAYER, "arm")):
            visible = idbuf == layer
            if np.count_nonzero(visible) < min_whole:
                continue
            whole = add(category, "whole", None, visible)
            ys, xs = np.nonzero(visible)
            cx, cy = xs + 0.5, ys + 0.5
            if layer == HAND_LAYER:
                labels = hand_part_labels(look_h, p, elbow, grip, cx, cy)
                names = HAND_PART_NAMES
            else:
                labels = sleeve_labels(look_h, p, elbow, cx, cy).astype(np.int64)
                names = ("forearm", "sleeve")
            parts = []
            for k, name in enumerate(names):
                m = np.zeros_like(visible)
                sel = labels == k
                m[ys[sel], xs[sel]] = True
                parts.append((name, m))
            add_parts(whole, parts)
    return out
