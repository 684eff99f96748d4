"""vislearn.common.malloc: with freed memory retained, re-allocating the same large buffer stops page-faulting
(the cost it removes from every training step). Each case runs in a fresh process: mallopt is per process."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, resource, sys
from vislearn.common.malloc import retain_freed_memory
changed = retain_freed_memory() if {retain} else False
import numpy as np
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(8 << 20)  # 64 MiB, above glibc's default mmap threshold
    del a
print(json.dumps({{"changed": changed, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}}))
"""


def faults(retain: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(retain=retain)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_instead_of_faulted_back_in():
    default, retained = faults(False), faults(True)
    assert retained["changed"] is True
    huge_pages = 20 * (64 << 20) // (2 << 20)  # numpy asks for 2 MiB pages on large arrays
    assert default["faults"] > 0.9 * huge_pages  # each allocation maps its pages afresh
    assert retained["faults"] < default["faults"] / 5  # the first allocation's pages serve the rest
