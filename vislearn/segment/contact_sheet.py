"""A contact sheet: a grid of frames with boxes and masks drawn over them, as one PNG to look at."""
from __future__ import annotations

import colorsys
import os

import numpy as np

PALETTE_SIZE = 12


def palette(n: int = PALETTE_SIZE) -> np.ndarray:
    """n well-separated bright colours (uint8 [n, 3])."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(i / n, 0.85, 1.0)] for i in range(n)], np.uint8)


def draw_panel(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray, title: str = "", alpha: float = 0.45):
    """The image with each mask blended in its colour and each box outlined in the same colour (PIL image)."""
    from PIL import Image, ImageDraw

    out = image.astype(np.float32).copy()
    colours = palette()
    for i, m in enumerate(masks):
        c = colours[i % len(colours)].astype(np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * c
    pil = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for i, b in enumerate(np.asarray(boxes).reshape(-1, 4)):
        draw.rectangle([float(b[0]), float(b[1]), float(b[2]) - 1, float(b[3]) - 1],
                       outline=tuple(int(v) for v in colours[i % len(colours)]), width=2)
    if title:
        draw.rectangle([0, 0, 7 * len(title) + 6, 13], fill=(0, 0, 0))
        draw.text((3, 1), title, fill=(255, 255, 255))
    return pil


def write_contact_sheet(path: str | os.PathLike, panels: list[tuple], columns: int = 4, width: int = 320) -> None:
    """panels: (image, boxes [N, 4] xyxy, masks [N, H, W], title); each scaled to `width` px; written atomically."""
    from PIL import Image

    from vislearn.common.files import atomic_path

    tiles = []
    for image, boxes, masks, title in panels:
        tile = draw_panel(image, boxes, masks, title)
        h = max(1, round(tile.height * width / tile.width))
        tiles.append(tile.resize((width, h), Image.BILINEAR))
    if not tiles:
        return
    rows = (len(tiles) + columns - 1) // columns
    cell_h = max(t.height for t in tiles)
    sheet = Image.new("RGB", (columns * width, rows * cell_h), (32, 32, 32))
    for k, t in enumerate(tiles):
        sheet.paste(t, ((k % columns) * width, (k // columns) * cell_h))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
