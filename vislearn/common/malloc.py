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
MMAP_CAP = 32 << 20  # the largest mmap threshold older glibc accepts (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)


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
    # each setting on its own (one refused must not skip the others); glibc releases before 2.35 cap the
    # mmap threshold at 32 MiB on 64-bit and refuse more
    mmap_ok = mallopt(M_MMAP_THRESHOLD, LIMIT) == 1 or mallopt(M_MMAP_THRESHOLD, MMAP_CAP) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, LIMIT) == 1
    pad_ok = mallopt(M_TOP_PAD, 64 << 20) == 1
    return mmap_ok and trim_ok and pad_ok
