"""Backgrounds and lighting: a table (wood, cloth, stone, a check pattern, carpet) seen from above at an angle,
a wall behind it or not, and a camera's gain map (exposure, colour cast, light from one side, vignetting).

Scene-independent: `vislearn.video.data.synthetic` draws its videos' backgrounds with these, and
`vislearn.backbones.imagesets` its images'. Sizes are in pixels; `S` is the frame height / 240.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


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


def jitter_colour(rng, base, spread=0.1):
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
        c0 = jitter_colour(rng, _WOOD[int(rng.integers(len(_WOOD)))])
        phase = smooth_noise(rng, h, w, 4) * 6.0
        grain = np.sin(ys * rng.uniform(0.25, 0.45) / S + phase) * 0.5 + 0.5
        plank = (np.floor((ys + rng.uniform(0, 60)) / (rng.uniform(45, 80) * S)) % 2) * 0.06
        table = c0 * (0.85 + 0.15 * grain + plank + 0.05 * low)[..., None]
    elif material == "check":
        a, b = _CHECK[int(rng.integers(len(_CHECK)))]
        size = rng.uniform(14, 30) * S
        sq = ((np.floor(xs / size) + np.floor(ys / size)) % 2)[..., None]
        table = (jitter_colour(rng, a) * (1 - sq) + jitter_colour(rng, b) * sq) * (1 + 0.06 * low)[..., None]
    else:
        palette = _CLOTH if material in ("cloth", "carpet") else _STONE
        c0 = jitter_colour(rng, palette[int(rng.integers(len(palette)))])
        table = c0 * (1 + 0.08 * low)[..., None] * np.ones((h, w, 1), F32)
        if material == "stone":
            vein = np.abs(np.sin(xs * 0.04 / S + ys * 0.02 / S + smooth_noise(rng, h, w, 5) * 3.0)) < 0.06
            table = table * (1 - 0.18 * vein[..., None])
        else:
            fine = rng.standard_normal((h, w)).astype(F32) * (9.0 if material == "carpet" else 4.0)
            table = table + fine[..., None]
    canvas = np.asarray(table, F32)
    if not top_down:
        c1 = jitter_colour(rng, _WALLS[int(rng.integers(len(_WALLS)))])
        c2 = jitter_colour(rng, _WALLS[int(rng.integers(len(_WALLS)))]) * 0.8
        g = np.clip(ys / max(table_y, 1.0), 0, 1)
        wall = c1 * (1 - g[..., None]) + c2 * g[..., None]
        wall = wall * (1 + 0.07 * smooth_noise(rng, h, w, 2))[..., None]
        for _ in range(int(rng.integers(0, 4))):  # shelves, posters, a window: clutter behind the table
            x0, x1 = sorted(rng.uniform(0, w, 2))
            y0, y1 = sorted(rng.uniform(0, table_y, 2))
            box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            wall = np.where(box[..., None], jitter_colour(rng, rng.uniform(40, 230, 3), 0.0), wall)
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
