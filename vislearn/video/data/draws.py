"""Counter-based random draws: the randomness of one dataset item as a pure function of
(seed, epoch, item key, stream, draw number).

Why not one numpy Generator per item: building a SeedSequence and four Generators costs tens of
microseconds per item, and Generators cannot be vectorised across items. Here a draw is the
splitmix64 hash of its coordinates, so a whole batch draws with a few numpy operations
(`uniforms`), and one item draws the very same numbers through `ItemRandom`, whose
`random` / `integers` are the two Generator methods the samplers and transforms use. The draws
do not depend on the worker that makes the item, nor on the order items are made in.
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_STREAM_BITS = 24  # draws per stream before two streams' counters could meet


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def item_keys(seed: int, epoch: int, ids: np.ndarray) -> np.ndarray:
    """uint64 key of each item from the run's seed, the epoch and a per-item id (e.g. crc32 of the video id)."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([seed % 2**64], np.uint64) * _GOLDEN + np.uint64(1))
        base = _mix(base ^ (np.array([epoch % 2**64], np.uint64) * _M1 + _GOLDEN))
        return _mix(base ^ (np.asarray(ids, np.uint64) * _M2 + _GOLDEN))


def uniforms(keys: np.ndarray, stream: int, n: int, start: int = 0) -> np.ndarray:
    """float64 [len(keys), n] in [0, 1): draws start..start+n-1 of `stream` for each key."""
    counter = (np.uint64(stream) << np.uint64(_STREAM_BITS)) + np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(np.asarray(keys, np.uint64)[:, None] + counter[None, :] * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def integers_from(u: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Integers in [0, n) from uniforms (the clip guards the rounding of u * n up to n)."""
    return np.minimum(np.floor(u * n).astype(np.int64), np.asarray(n, np.int64) - 1)


class ItemRandom:
    """The draws of one stream of one item, with the Generator methods the samplers use."""

    def __init__(self, key: np.uint64 | int, stream: int):
        self.key = np.array([key], np.uint64)
        self.stream = stream
        self.count = 0

    def random(self, size: int | None = None):
        u = uniforms(self.key, self.stream, 1 if size is None else int(size), self.count)[0]
        self.count += len(u)
        return float(u[0]) if size is None else u

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        if high <= low:
            raise ValueError(f"integers: high ({high}) must be above low ({low})")
        return int(low + integers_from(self.random(1), high - low)[0])
