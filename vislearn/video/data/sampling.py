"""Which frames of a video a sample uses.

Two samplers, as in the official Something-Else code:
  - `SegmentSampler` (TSN): the frames are cut into T equal segments; training takes a random frame
    in each segment, evaluation the centre frame. Used for the 8 box frames (over the annotated
    length) and optionally for RGB frames. With fewer frames than T, frames repeat in order
    (0,0,1,1,2,...), where the official code returned T copies of frame 0 at evaluation.
  - `StridedClipSampler`: T consecutive frames `stride` apart (official RGB clip: 16 frames,
    stride 2); training starts at a random frame, evaluation at the centre; a video shorter than
    the clip is padded by repeating its last frame.

Differences from the official code, on purpose: the official RGB clip starts in
[0, n - 33) with n = frame count - 1 and spreads short videos with linspace; here starts cover
every valid position and short clips repeat the last frame.

Every sampler returns sorted (non-decreasing) int64 indices in [0, num_frames): time is never
reversed. Randomness comes only from the generator passed in (a numpy Generator, or the dataset's
`draws.ItemRandom`: only `random` and `integers` are used), so a sample is reproducible from its seed. `views(num_frames, num_clips)` gives the evenly spaced temporal clips of multi-view
testing (the spatial crops are in `video.data.transforms.NCrop`).
"""
from __future__ import annotations

import numpy as np


class FrameSampler:
    """Base class: `num_out` indices per clip."""

    num_out: int

    def sample(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Random clip for training."""
        raise NotImplementedError

    def centre(self, num_frames: int) -> np.ndarray:
        """Deterministic clip for evaluation."""
        return self.views(num_frames, 1)[0]

    def views(self, num_frames: int, num_clips: int) -> np.ndarray:
        """`num_clips` deterministic clips spread evenly over the video: int64 [num_clips, num_out]."""
        raise NotImplementedError

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Random with a generator (training), centre without one (evaluation)."""
        _check_len(num_frames)
        return self.centre(num_frames) if rng is None else self.sample(num_frames, rng)


class SegmentSampler(FrameSampler):
    """TSN sampling: one frame per segment (random offset for training, centre for evaluation)."""

    def __init__(self, num_segments: int = 8):
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.num_out = num_segments

    def sample(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        _check_len(num_frames)
        return self._at(num_frames, rng.random(self.num_out))

    def views(self, num_frames: int, num_clips: int) -> np.ndarray:
        # Clip k takes the point (k + 0.5) / num_clips of every segment: one clip -> segment centres.
        _check_len(num_frames)
        return np.stack([self._at(num_frames, np.full(self.num_out, (k + 0.5) / num_clips)) for k in range(num_clips)])

    def _at(self, num_frames: int, fraction: np.ndarray) -> np.ndarray:
        seg = num_frames / self.num_out
        idx = np.floor((np.arange(self.num_out) + fraction) * seg).astype(np.int64)
        return np.clip(idx, 0, num_frames - 1)

    def __repr__(self) -> str:
        return f"SegmentSampler(num_segments={self.num_out})"


class StridedClipSampler(FrameSampler):
    """`clip_len` frames `stride` apart from a start frame (official RGB clips: 16 x stride 2)."""

    def __init__(self, clip_len: int = 16, stride: int = 2):
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        self.num_out = clip_len
        self.stride = stride

    @property
    def span(self) -> int:
        """Frames covered by one clip."""
        return (self.num_out - 1) * self.stride + 1

    def sample(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        _check_len(num_frames)
        room = max(0, num_frames - self.span)
        return self._from(num_frames, int(rng.integers(0, room + 1)))

    def views(self, num_frames: int, num_clips: int) -> np.ndarray:
        _check_len(num_frames)
        room = max(0, num_frames - self.span)
        if num_clips == 1:
            starts = [room // 2]
        else:
            starts = np.round(np.linspace(0, room, num_clips)).astype(int)
        return np.stack([self._from(num_frames, int(s)) for s in starts])

    def _from(self, num_frames: int, start: int) -> np.ndarray:
        idx = start + self.stride * np.arange(self.num_out, dtype=np.int64)
        return np.minimum(idx, num_frames - 1)  # short video: repeat the last frame

    def __repr__(self) -> str:
        return f"StridedClipSampler(clip_len={self.num_out}, stride={self.stride})"


SAMPLERS = ("segment", "strided")


def make_sampler(name: str, num_frames: int, stride: int = 2) -> FrameSampler:
    """'segment' (TSN, `num_frames` segments) or 'strided' (`num_frames` frames `stride` apart: with 16
    frames and stride 2, the official RGB clip)."""
    if name == "segment":
        return SegmentSampler(num_frames)
    if name == "strided":
        return StridedClipSampler(num_frames, stride)
    raise ValueError(f"unknown frame sampler {name!r}: use 'segment' or 'strided'")


def _check_len(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample frames from a video of {num_frames} frames")
