"""Frame sizes known without decoding a frame: from the boxes' extent, or from a data set's own description.

Boxes are pixels of their video's frames, so a coordinate-only dataset must know each frame's size to
normalise them. Both `clip_dataset` and `coord_batch` read these (one module below both, so that
neither imports the other for them).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vislearn.common.jsonio import read_json

if TYPE_CHECKING:
    from .annotations import VideoBoxes

SSV2_FRAME_HEIGHT = 240  # SSv2 frames are 240 px high (their widths vary)
SYNTHETIC_META = "synthetic.json"  # `vislearn video synthetic`'s description of its set (synthetic.generate.SYNTHETIC)


def box_extent_size(vb: "VideoBoxes | None", frame_height: int = SSV2_FRAME_HEIGHT) -> tuple[int, int]:
    """Frame size guessed from the boxes: (ceil(max x2), max(frame_height, ceil(max y2)))."""
    if vb is None or len(vb.xyxy) == 0:
        return frame_height, frame_height
    x2, y2 = float(vb.xyxy[:, 2].max()), float(vb.xyxy[:, 3].max())
    return max(1, math.ceil(x2)), max(frame_height, math.ceil(y2))


def recorded_frame_size(videos: str | os.PathLike | None, boxes: str | os.PathLike | None
                        ) -> tuple[tuple[int, int], Path] | None:
    """((w, h), file) where the data set says how big its frames are: the synthetic generator's
    synthetic.json beside the videos folder (OUT/videos) or beside the boxes (OUT/annotations.json, or a
    box store made from them). None where nothing says (real SSv2: its videos differ in size)."""
    for path in (videos, boxes):
        if not path:  # an unset path is "", whose parent would be the working directory
            continue
        meta = Path(path).parent / SYNTHETIC_META
        if meta.is_file():
            data = read_json(meta)
            settings = data.get("settings") if isinstance(data, dict) else None
            w, h = (settings.get("width"), settings.get("height")) if isinstance(settings, dict) else (None, None)
            if isinstance(w, int) and isinstance(h, int):
                return (w, h), meta
    return None
