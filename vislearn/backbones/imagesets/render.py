"""Drawing one image of the set: a noun (the class) on one of the renderer's tables, with clutter and a hand.

Image `index` of split `split` of seed `seed` is drawn from its own generator, seeded with the entropy words
(seed, split number, index, STREAM): any worker count, order or subset gives the same image. Its label is
`index % len(CLASSES)` (so every class has exactly `per_class` images in a split of `per_class * classes`).

What varies (all drawn per image):
- the target: its size (the longest side 45-80% of the image), position (at most a little cut by the frame),
  rotation (any angle), flip (turned over), aspect (+-10%), colours (the noun's palettes, each jittered);
- the background: the video renderer's tables (wood, cloth, stone, check, carpet; a wall with clutter or a
  top-down view), at a random zoom, drawn at half the size and upsampled (smooth at this scale anyway);
- clutter: 0-3 smaller objects of other classes (at most 3/4 of the target's size), anywhere, partly out of
  the frame; most behind the target, some in front where they hide little of it; sometimes one large object
  of another class mostly outside the frame;
- a hand (35% of images), reaching in from any side over the target, never hiding more than 40% of it;
- lighting (exposure, colour cast, light from one side, vignetting), a contact shadow, sensor noise.
The target stays identifiable: the biggest object, at least 60% of it in view (`min_visible` below).
"""
from __future__ import annotations

import functools

import numpy as np

from vislearn.common.drawing.background import make_background, make_lighting
from vislearn.common.drawing.draw import ObjState, draw_object, draw_shadow
from vislearn.common.drawing.hand import draw_hand, make_hand
from vislearn.common.drawing.objects import Look, Noun, measure

from .nouns import CLASSES

F32 = np.float32
VERSION = "1"  # of the pixels: any change to what an image shows (here or in vislearn.common.drawing) changes it
SPLITS = ("train", "val", "test")
STREAM = 0x1A6E5E7  # the last entropy word: this set's streams never meet another generator's seeded (seed, ...)
TARGET = 1  # the target's value in the id buffer (clutter 2.., the hand 250, its arm 251)
HAND_PROBABILITY = 0.35
MIN_VISIBLE = 0.6  # the hand and front clutter never leave less than this fraction of the target in view
FRONT_KEEP = 0.85  # a clutter object in front of the target hides at most 15% of it


@functools.cache
def _extent(noun: Noun) -> tuple[float, float, float, float]:
    """The silhouette's extent centre and half sizes per unit of half size (ox/hw, oy/hh, ehw/hw, ehh/hh),
    measured once per noun at a large size (`measure` per instance is the costliest step at 64x64)."""
    look = Look(noun, noun.size[0] * 2.0, noun.size[1] * 2.0, [np.zeros(3, F32)] * len(noun.palettes), 0.0)
    measure(look)
    return look.ox / look.hw, look.oy / look.hh, look.ehw / look.hw, look.ehh / look.hh


def make_look(noun: Noun, rng: np.random.Generator, longest: float) -> Look:
    """An instance of `noun` whose longest side is about `longest` pixels: aspect +-10%, each palette colour
    picked and jittered (brightness 0.8-1.2 per colour, +-14 per channel), a texture phase."""
    aspect = rng.uniform(0.9, 1.1)
    scale = longest / max(noun.size)
    hw, hh = noun.size[0] * scale * aspect / 2, noun.size[1] * scale / aspect / 2
    colours = []
    for slot in noun.palettes:
        base = np.asarray(slot[int(rng.integers(len(slot)))], F32)
        colours.append(np.clip(base * rng.uniform(0.8, 1.2) + rng.uniform(-14, 14, 3), 0, 255).astype(F32))
    ox, oy, ew, eh = _extent(noun)
    return Look(noun, hw, hh, colours, float(rng.uniform(0, 2 * np.pi)), ox=ox * hw, oy=oy * hh,
                ehw=ew * hw * 1.02 + 0.5, ehh=eh * hh * 1.02 + 0.5)


def _thinness(noun: Noun) -> float:
    """Box area per squared longest side."""
    return min(noun.size) / max(noun.size)


def _half_extent(look: Look, st: ObjState) -> tuple[float, float]:
    """Half width and height of the box around the object under its rotation and flip."""
    c, s = abs(np.cos(st.angle)), abs(np.sin(st.angle))
    ey = look.ehh * abs(st.flip)
    return c * look.ehw + s * ey, s * look.ehw + c * ey


def _upsample2(a: np.ndarray) -> np.ndarray:
    """Bilinear x2 (pixel centres: each output pixel is 3/4 of its source pixel and 1/4 of the neighbour)."""
    p = np.concatenate([a[:1], a, a[-1:]], axis=0)
    rows = np.empty((2 * a.shape[0],) + a.shape[1:], a.dtype)
    rows[0::2] = 0.75 * a + 0.25 * p[:-2]
    rows[1::2] = 0.75 * a + 0.25 * p[2:]
    p = np.concatenate([rows[:, :1], rows, rows[:, -1:]], axis=1)
    out = np.empty((rows.shape[0], 2 * a.shape[1]) + a.shape[2:], a.dtype)
    out[:, 0::2] = 0.75 * rows + 0.25 * p[:, :-2]
    out[:, 1::2] = 0.75 * rows + 0.25 * p[:, 2:]
    return out


def _visible(idbuf: np.ndarray) -> int:
    return int(np.count_nonzero(idbuf == TARGET))


def _occlude(canvas, idbuf, draw, keep: float) -> bool:
    """Draw something in front of the target; undo it when less than `keep` of the target stays in view."""
    before = _visible(idbuf)
    saved, saved_ids = canvas.copy(), idbuf.copy()
    draw()
    if _visible(idbuf) >= keep * before:
        return True
    canvas[...] = saved
    idbuf[...] = saved_ids
    return False


def table_canvas(rng: np.random.Generator, bank: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random n x n crop of a table from `bank` (flipped half the time, colour-jittered), an empty id buffer and
    the lighting to apply at the end: how every rendered image starts (the object set's and the segment family's)."""
    b, oy, ox = int(rng.integers(len(bank))), int(rng.integers(bank.shape[1] - n + 1)), \
        int(rng.integers(bank.shape[2] - n + 1))
    table = bank[b, oy:oy + n, ox:ox + n]
    if rng.random() < 0.5:
        table = table[:, ::-1]
    canvas = table.astype(F32) * (rng.uniform(0.85, 1.15, 3) * rng.uniform(0.8, 1.2)).astype(F32)
    return canvas, np.zeros((n, n), np.uint8), make_lighting(rng, n, n)


def rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index, STREAM]))


BANK_WORD = 2**32 - 1  # the index word of the background bank's generator (images have indices below it)


def bank_size(size: int) -> int:
    return 256 if size <= 128 else 64


@functools.lru_cache(maxsize=3)
def background_bank(seed: int, split: str, size: int) -> np.ndarray:
    """The split's tables: `bank_size(size)` backgrounds (uint8 [B, M, M, 3], M = size + size // 4) drawn once
    per (seed, split, size) with the video renderer's `make_background` at a random zoom (the camera is closer
    than in the videos: the table's texture is bigger), at half the size and upsampled. An image takes one,
    a random crop of it, a flip and a colour jitter: drawing a table per image would take half the time of
    an image, and the splits never share a table."""
    rng = rng_for(seed, split, BANK_WORD)
    m = size + size // 4
    half = (m + 1) // 2
    bank = np.empty((bank_size(size), m, m, 3), np.uint8)
    for b in range(len(bank)):
        background, _, _ = make_background(rng, half, half, size / 240.0 * rng.uniform(1.4, 2.6) / 2)
        bank[b] = _upsample2(background)[:m, :m]
    return bank


@functools.lru_cache(maxsize=3)
def noise_bank(size: int) -> np.ndarray:
    """Sensor noise (float32 [4, size+16, size+16, 3], unit variance): an image takes a random crop of one."""
    rng = np.random.default_rng(np.random.SeedSequence([size, STREAM]))
    return rng.standard_normal((4, size + 16, size + 16, 3), dtype=F32)


def render_image(seed: int, split: str, index: int, size: int = 64) -> tuple[np.ndarray, int]:
    """Image `index` of `split` (uint8 [size,size,3]) and its label; depends on (seed, split, index, size) only."""
    bank = background_bank(seed, split, size)
    rng = rng_for(seed, split, index)
    label = index % len(CLASSES)
    noun = CLASSES[label]
    n = size
    zoom = rng.uniform(1.4, 2.6)  # the objects' scale of the renderer (shadows, the hand)
    canvas, idbuf, lighting = table_canvas(rng, bank, n)

    # the target: pose first, so that clutter can be placed around it
    frac = rng.uniform(0.45, 0.8)
    look = make_look(noun, rng, frac * n)
    flip = (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.8, 1.0)
    st = ObjState(0.0, 0.0, float(rng.uniform(-np.pi, np.pi)), flip)
    hx, hy = _half_extent(look, st)
    st.x = n / 2 if 0.85 * hx >= n / 2 else float(rng.uniform(0.85 * hx, n - 0.85 * hx))
    st.y = n / 2 if 0.85 * hy >= n / 2 else float(rng.uniform(0.85 * hy, n - 0.85 * hy))

    # clutter: smaller objects of other classes, anywhere; behind the target or in front of it
    others = []
    area = (frac * n) ** 2 * _thinness(noun)  # of the target's box: every other object's is smaller

    def longest(other: Noun, most: float) -> float:
        """The longest side of an object of class `other` whose box area is at most `most` times the target's."""
        return float(np.sqrt(most * area / _thinness(other)))

    for _ in range(int(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15]))):
        k = int(rng.integers(len(CLASSES) - 1))
        other = CLASSES[k + (k >= label)]
        lk = make_look(other, rng, min(rng.uniform(0.2, 0.45) * n, 0.75 * frac * n, longest(other, 0.4)))
        cst = ObjState(float(rng.uniform(-0.05, 1.05) * n), float(rng.uniform(-0.05, 1.05) * n),
                       float(rng.uniform(-np.pi, np.pi)), 1.0 if rng.random() < 0.5 else -1.0)
        others.append((lk, cst, rng.random() < 0.3))
    if rng.random() < 0.15:  # a large object of another class, mostly outside the frame
        k = int(rng.integers(len(CLASSES) - 1))
        other = CLASSES[k + (k >= label)]
        lk = make_look(other, rng, min(frac * n, longest(other, 1.0)) * rng.uniform(0.8, 1.0))
        cst = ObjState(0.0, 0.0, float(rng.uniform(-np.pi, np.pi)), 1.0 if rng.random() < 0.5 else -1.0)
        ex, ey = _half_extent(lk, cst)
        side, t = int(rng.integers(4)), float(rng.uniform(0.1, 0.9) * n)
        out_x, out_y = ex * rng.uniform(0.3, 0.8), ey * rng.uniform(0.3, 0.8)
        cst.x, cst.y = ((-out_x, t), (n + out_x, t), (t, -out_y), (t, n + out_y))[side]
        others.insert(0, (lk, cst, False))

    for j, (lk, cst, front) in enumerate(others):
        if not front:
            draw_object(canvas, idbuf, 2 + j, lk, cst)
    if rng.random() < 0.7:
        ground = st.y + hy
        draw_shadow(canvas, look, st.x, ground, ground, n / 240.0 * zoom)
    draw_object(canvas, idbuf, TARGET, look, st)
    for j, (lk, cst, front) in enumerate(others):
        if front:
            _occlude(canvas, idbuf, lambda: draw_object(canvas, idbuf, 2 + j, lk, cst), FRONT_KEEP)

    if rng.random() < HAND_PROBABILITY:  # a hand reaching in over the target from any side
        hand = make_hand(rng, n / 240.0 * rng.uniform(1.4, 2.0))
        theta, grip = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.7)
        away = np.array([np.cos(theta), np.sin(theta)])
        reach = max(hx, hy) * rng.uniform(0.5, 1.0) + 0.3 * hand.palm_a
        for _ in range(3):  # farther out each time the hand would hide too much of the target
            p = np.array([st.x, st.y]) + away * reach
            if _occlude(canvas, idbuf, lambda: draw_hand(canvas, idbuf, hand, p, p + away * 3 * n, grip, None),
                        MIN_VISIBLE):
                break
            reach += 0.35 * max(hx, hy)

    canvas *= lighting
    k, ny, nx = (int(v) for v in rng.integers(0, (4, 17, 17)))
    canvas += noise_bank(n)[k, ny:ny + n, nx:nx + n] * F32(rng.uniform(1.0, 4.0))
    np.clip(canvas, 0, 255, out=canvas)
    return canvas.astype(np.uint8), label


def render_images(seed: int, split: str, indices, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Images `indices` of `split`: uint8 [N,size,size,3] and int64 labels [N]."""
    indices = list(indices)
    images = np.empty((len(indices), size, size, 3), np.uint8)
    labels = np.empty(len(indices), np.int64)
    for i, index in enumerate(indices):
        images[i], labels[i] = render_image(seed, split, index, size)
    return images, labels
