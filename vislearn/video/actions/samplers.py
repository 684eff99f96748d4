"""Index samplers that make torchrun runs equal to single-process runs.

`GlobalBatchSampler` draws one permutation per epoch from (seed, epoch), cuts it into global batches
(the last incomplete one is dropped, as in the official recipe) and gives each process its own
contiguous part of every global batch. With synchronized BatchNorm and DDP's gradient averaging,
N processes then follow the same trajectory as one process with the same global batch.
`ShardSampler` splits evaluation samples between processes without padding or dropping any.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler

from vislearn.common.errors import UserError


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, num_samples: int, global_batch: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, drop_last: bool = True):
        if global_batch % world_size:
            raise UserError(f"batch_size {global_batch} is not divisible by the {world_size} processes")
        if num_samples < global_batch and drop_last:
            raise UserError(f"batch_size {global_batch} is larger than the {num_samples} training videos (the last "
                            f"incomplete batch is dropped, so no step would run); lower batch_size")
        self.num_samples, self.global_batch, self.seed = num_samples, global_batch, seed
        self.rank, self.world_size, self.shuffle, self.drop_last = rank, world_size, shuffle, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.global_batch)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def __iter__(self):
        order = self._order()
        per_rank = self.global_batch // self.world_size
        for b in range(len(self)):
            batch = order[b * self.global_batch:(b + 1) * self.global_batch]
            if len(batch) < self.global_batch:  # only when drop_last=False: split what is left
                yield batch[self.rank::self.world_size].tolist()
            else:
                yield batch[self.rank * per_rank:(self.rank + 1) * per_rank].tolist()


class ShardSampler(Sampler[int]):
    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, num_samples, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)
