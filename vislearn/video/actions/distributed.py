"""The distributed-training helpers live in `vislearn.common.distributed` (shared with `vislearn.control`); these
names stay importable from here."""
from vislearn.common.distributed import (DistInfo, GlobalBatchNorm, all_gather_objects, barrier,  # noqa: F401
                                         cleanup_distributed, init_distributed, pick_device, synchronize_batchnorm)
