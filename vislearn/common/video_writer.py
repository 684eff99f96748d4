"""Encode frames to a video file with PyAV: VP9 .webm (the SSv2 format) or H.264 .mp4 (video's renders and synthetic
videos, control's `record`).

`write_video` takes all frames at once; `VideoWriter` takes them one at a time, so a long video
(e.g. an inference overlay) never has to sit in memory whole. Both write to a temporary name and
rename at the end, so a killed process never leaves a half video under the final name.
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vislearn.common.files import atomic_path

_CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".mkv": "libvpx-vp9"}


class VideoWriter:
    """`with VideoWriter(path, width, height, fps) as w: w.write(frame)` for uint8 RGB frames [H,W,3].

    VP9 takes any size (SSv2 has 427x240); H.264 needs even ones. `fast` uses the encoders'
    real-time settings. The file appears under `path` only when the block ends without error.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: int = 12, crf: int = 32,
                 fast: bool = True):
        self.path = Path(path)
        codec = _CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise ValueError(f"{self.path}: unsupported video extension (use {', '.join(_CODECS)})")
        if width < 1 or height < 1 or (codec == "libx264" and (height % 2 or width % 2)):
            raise ValueError(f"{self.path}: need a positive (and for H.264 even) width/height, got {width}x{height}")
        self.width, self.height, self.count = int(width), int(height), 0
        options = {"crf": str(crf)}
        if codec == "libvpx-vp9":
            options.update({"b": "0", "deadline": "realtime" if fast else "good", "cpu-used": "8" if fast else "4",
                            "row-mt": "1", "lag-in-frames": "0"})
        else:
            options.update({"preset": "veryfast" if fast else "medium"})
        self._atomic = atomic_path(self.path)  # the file appears under `path` only when complete
        self._tmp = self._atomic.__enter__()
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._stream = self._container.add_stream(codec, rate=Fraction(fps, 1))
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._stream.options = options
        self._stream.thread_count = 1

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame must be uint8 [{self.height},{self.width},3], got {frame.dtype} {frame.shape}")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)
        self.count += 1

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.count == 0:
                    raise ValueError(f"{self.path}: need at least one frame")
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        except BaseException as e:
            with contextlib.suppress(Exception):
                self._container.close()
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, tb)  # renames into place, or removes the temporary file


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 12, crf: int = 32, fast: bool = True) -> None:
    """Write uint8 frames [T,H,W,3] (RGB). VP9 takes any size (SSv2 has 427x240); H.264 needs even ones."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0 or (path.suffix.lower() == ".mp4" and (h % 2 or w % 2)):
        raise ValueError(f"{path}: need at least one frame (and even width/height for H.264), got {frames.shape}")
    with VideoWriter(path, w, h, fps=fps, crf=crf, fast=fast) as writer:
        for frame in frames:
            writer.write(frame)
