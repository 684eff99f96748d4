"""Draw what the models saw over the video: tracked boxes, slot ids, the predicted label.

Why: a top-5 list says nothing about whether the boxes were right; the overlay lets a person check
the tracks (and so the input of the box models) frame by frame. Output, per video:
  <out>/<id>.mp4        H.264, 12 fps, one frame per 12-fps input frame (the annotation frames)
  <out>/<id>_sheet.png  contact sheet: up to 8 evenly spaced overlay frames
Each overlay frame is a banner strip (predicted label, score, frame number) above the frame, so the
label never hides a box. Frames narrower than 320 px are enlarged by an integer factor so the text
stays readable; `layout_for` gives the geometry (scale, banner height, even canvas size for H.264).
Boxes: colour by identity, the hand in orange, objects in cool colours (blue, green, violet, ...);
a tag inside the box's top-left corner names the model slot (s0 = hand, s1.. = objects "0000"..,
clean layout of `video.data.slots`; "s-" = no slot left) and the identity.
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vislearn.common.files import atomic_path
from vislearn.video.data.annotations import HAND, VideoBoxes
from vislearn.video.data.slots import assign_tracks
from vislearn.common.video import VideoReader
from vislearn.video.data.video_writer import VideoWriter

HAND_COLOUR = (255, 110, 0)
OBJECT_COLOURS = [(0, 140, 255), (0, 210, 80), (170, 60, 255), (0, 220, 220), (40, 60, 255), (120, 230, 0)]
BANNER_BG, BANNER_FG = (24, 24, 24), (255, 255, 255)
MIN_WIDTH = 320  # narrower frames are enlarged by an integer factor
LINE = 3  # box outline width (px of the output): survives H.264's 2x2 chroma subsampling
SHEET_FRAMES, SHEET_COLUMNS, SHEET_WIDTH = 8, 4, 320


def identity_colour(track_id: str) -> tuple[int, int, int]:
    """Hand: orange. Objects "0000", "0001", ...: the object palette in order; other ids: hashed into it."""
    if track_id == HAND or track_id.startswith("h"):
        return HAND_COLOUR
    k = int(track_id) if track_id.isdigit() else zlib.crc32(track_id.encode())
    return OBJECT_COLOURS[k % len(OBJECT_COLOURS)]


@dataclass(frozen=True)
class Layout:
    scale: int  # input pixel -> output pixels
    banner: int  # height of the label strip above the frame
    width: int  # output canvas (even, for H.264)
    height: int
    font_size: int

    def to_canvas(self, xyxy, frame_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """Pixel box (x1, y1, x2, y2, inclusive) of the outline on the canvas, clipped to the
        frame; None when nothing of the box is left."""
        w, h = frame_size[0] * self.scale, frame_size[1] * self.scale
        x1, y1, x2, y2 = (round(float(v) * self.scale) for v in xyxy)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return None
        return x1, y1 + self.banner, x2, y2 + self.banner


def layout_for(width: int, height: int) -> Layout:
    scale = max(1, math.ceil(MIN_WIDTH / max(1, width)))
    font_size = 14
    banner = font_size + 8
    w, h = width * scale, banner + height * scale
    return Layout(scale, banner, w + w % 2, h + h % 2, font_size)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


@dataclass
class FrameBoxes:
    """Boxes to draw, by 12-fps frame: frame -> [(track id, xyxy, tag)]."""

    by_frame: dict[int, list[tuple[str, np.ndarray, str]]]

    @classmethod
    def from_video_boxes(cls, vb: VideoBoxes | None, num_slots: int = 4) -> "FrameBoxes":
        if vb is None:
            return cls({})
        slots, _ = assign_tracks(vb, num_slots)
        slot_of = {t: n for n, t in enumerate(slots) if t is not None}
        by_frame: dict[int, list] = {}
        for k, track in enumerate(vb.track):
            frame = int(vb.frame_index[vb.box_frame[k]])
            noun = vb.category[k] if k < len(vb.category) else ""
            slot = f"s{slot_of[track]}" if track in slot_of else "s-"
            tag = " ".join(x for x in (slot, track, noun if noun not in ("", track, "object") else "") if x)
            by_frame.setdefault(frame, []).append((track, vb.xyxy[k], tag))
        return cls(by_frame)


def draw_frame(frame: np.ndarray, boxes: list[tuple[str, np.ndarray, str]], title: str, footer: str,
               layout: Layout) -> np.ndarray:
    """One overlay frame: banner (title left, footer right), the frame enlarged by `layout.scale`, boxes."""
    h, w = frame.shape[:2]
    img = Image.new("RGB", (layout.width, layout.height), BANNER_BG)
    shown = Image.fromarray(frame)
    if layout.scale > 1:
        shown = shown.resize((w * layout.scale, h * layout.scale), Image.NEAREST)
    img.paste(shown, (0, layout.banner))
    draw = ImageDraw.Draw(img)
    font = _font(layout.font_size)
    small = _font(max(9, layout.font_size - 3))
    for track, xyxy, tag in boxes:
        colour = identity_colour(track)
        box = layout.to_canvas(xyxy, (w, h))
        if box is None:
            continue
        x1, y1, x2, y2 = box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=LINE)
        text = _fit(draw, tag, small, max(x2 - x1 - 2, 8))
        left, _, right, bottom = draw.textbbox((0, 0), text, font=small)
        tw, th = right - left, bottom + 2
        if x2 - x1 > 12 and y2 - y1 > th + LINE:
            draw.rectangle((x1, y1, min(x1 + tw + 4, x2), y1 + th), fill=colour)
            draw.text((x1 + 2, y1), text, fill=(0, 0, 0), font=small)
    right = draw.textlength(footer, font=font)
    draw.text((layout.width - right - 4, 3), footer, fill=BANNER_FG, font=font)
    draw.text((4, 3), _fit(draw, title, font, layout.width - right - 16), fill=BANNER_FG, font=font)
    return np.asarray(img)


@dataclass
class Rendered:
    video: Path
    sheet: Path
    frames: int
    layout: Layout


def render_video(reader: VideoReader, boxes: FrameBoxes, title: str, out_dir: str | os.PathLike,
                 name: str, crf: int = 23) -> Rendered:
    """Write `<out_dir>/<name>.mp4` (every frame of `reader`, in order, with the overlay) and
    `<out_dir>/<name>_sheet.png`. Frames are streamed: a long video is never held in memory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(reader)
    w, h = reader.size
    layout = layout_for(w, h)
    pick = set(sheet_indices(n))
    thumbs: list[Image.Image] = []
    video = out_dir / f"{name}.mp4"
    with VideoWriter(video, layout.width, layout.height, fps=12, crf=crf) as writer:
        for i, frame in enumerate(reader.iter_frames()):
            out = draw_frame(frame, boxes.by_frame.get(i, []), title, f"{i + 1}/{n}", layout)
            writer.write(out)
            if i in pick:
                thumbs.append(_thumb(out))
        count = writer.count
    sheet = out_dir / f"{name}_sheet.png"
    with atomic_path(sheet) as tmp:
        sheet_image(thumbs).save(tmp, format="PNG")
    return Rendered(video, sheet, count, layout)


def contact_sheet(reader: VideoReader, boxes: FrameBoxes, title: str) -> Image.Image:
    """The contact sheet of `render_video` alone: only its frames are decoded and drawn, no video is
    written (the HTML report shows one per validation video it picks)."""
    n = len(reader)
    layout = layout_for(*reader.size)
    picks = sheet_indices(n)
    frames = reader.get_frames(picks)
    return sheet_image([_thumb(draw_frame(f, boxes.by_frame.get(i, []), title, f"{i + 1}/{n}", layout))
                        for i, f in zip(picks, frames)])


def sheet_indices(n: int) -> list[int]:
    """The frames of a contact sheet: up to SHEET_FRAMES, evenly spaced over the n frames."""
    return np.unique(np.linspace(0, n - 1, min(SHEET_FRAMES, n)).round().astype(int)).tolist()


def _thumb(frame: np.ndarray) -> Image.Image:
    thumb = Image.fromarray(frame)
    if thumb.width > SHEET_WIDTH:
        thumb = thumb.resize((SHEET_WIDTH, round(thumb.height * SHEET_WIDTH / thumb.width)), Image.BILINEAR)
    return thumb


def sheet_image(thumbs: list[Image.Image]) -> Image.Image:
    cols = min(SHEET_COLUMNS, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    tw, th = thumbs[0].size
    gap = 4
    sheet = Image.new("RGB", (cols * tw + (cols + 1) * gap, rows * th + (rows + 1) * gap), (255, 255, 255))
    for k, t in enumerate(thumbs):
        r, c = divmod(k, cols)
        sheet.paste(t, (gap + c * (tw + gap), gap + r * (th + gap)))
    return sheet
