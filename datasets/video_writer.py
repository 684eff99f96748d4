"""Encode frames to a video file with PyAV: VP9 .webm (the SSv2 format) or H.264 .mp4."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".mkv": "libvpx-vp9"}


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 12, crf: int = 32, fast: bool = True) -> None:
    """Write uint8 frames [T,H,W,3] (RGB). VP9 takes any size (SSv2 has 427x240); H.264 needs even ones.

    Written to a temporary name and renamed, so a killed process never leaves a half video
    under the final name. `fast` uses the encoders' real-time settings (generation speed
    matters more than file size for the synthetic set).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    codec = _CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: unsupported video extension (use {', '.join(_CODECS)})")
    if t == 0 or (codec == "libx264" and (h % 2 or w % 2)):
        raise ValueError(f"{path}: need at least one frame (and even width/height for H.264), got {frames.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    options = {"crf": str(crf)}
    if codec == "libvpx-vp9":
        options.update({"b": "0", "deadline": "realtime" if fast else "good", "cpu-used": "8" if fast else "4",
                        "row-mt": "1", "lag-in-frames": "0"})
    else:
        options.update({"preset": "veryfast" if fast else "medium"})
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps, 1))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = options
            stream.thread_count = 1
            for frame in frames:
                frame = np.ascontiguousarray(frame)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
