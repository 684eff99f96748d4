"""Keep freed heap memory in the process instead of handing it back to the OS at every free.

glibc serves large allocations with mmap and returns them (and the top of the heap) to the kernel when
they are freed. A training step frees and re-allocates the same activation buffers every iteration, so
each step page-faults its buffers back in: on the demo that was 141 million page faults and 27% of the
CPU time spent in the kernel. With the thresholds raised, freed buffers are reused from the heap (the
scene run of the demo: system time 12.6 s -> 4.1 s, wall -12%; `bench/bench_malloc.py`). The cost is
that the resident size stays at its peak, which a training process reaches anyway.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
LIMIT = 1 << 30  # allocations below 1 GiB come from the heap; up to 1 GiB of free heap top is kept


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the workers it forks later).
    Returns False where there is no glibc (macOS, Windows, musl): nothing changes there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(p, v) == 1 for p, v in ((M_MMAP_THRESHOLD, LIMIT), (M_TRIM_THRESHOLD, LIMIT),
                                              (M_TOP_PAD, 64 << 20)))
