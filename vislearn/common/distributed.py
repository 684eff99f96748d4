"""Distributed training helpers (every family): `torchrun` environment, process groups, synchronized BatchNorm.

One process by default; under `torchrun` (RANK/WORLD_SIZE set) every process trains on its part of
each global batch and DistributedDataParallel averages the gradients. BatchNorm statistics are
synchronised across processes so that N processes with a per-process batch of B/N compute the same
thing as one process with a batch of B: torch's SyncBatchNorm on CUDA, and on CPU (gloo) a small
BatchNorm whose statistics go through a differentiable all-reduce (torch's refuses CPU tensors).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from vislearn.common.device import resolve_device
from vislearn.common.freeze import is_frozen


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device of this process (`vislearn.common.device.resolve_device`: a bare `cuda` is the GPU of
    `local_rank`); a device that cannot be used here is a one-line UserError."""
    return resolve_device(name, local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Read the torchrun environment; start a process group when there is more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchNorm(nn.Module):
    """BatchNorm over the union of all processes' batches, for any device (used on CPU/gloo).

    Sums of x and x^2 and the element count go through `torch.distributed.nn.functional.all_reduce`,
    whose backward is the all-reduce of the gradients, so autograd gives exact synchronized-BN
    gradients. In eval mode (or when frozen) it is ordinary BatchNorm with the running statistics.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.affine, self.track_running_stats = bn.affine, bn.track_running_stats
        self.weight, self.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            self.register_buffer("running_mean", bn.running_mean)
            self.register_buffer("running_var", bn.running_var)
            self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.training = bn.training
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad_(bn.weight.requires_grad if bn.weight is not None else True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_batch = self.training or not self.track_running_stats
        if not use_batch or not dist.is_initialized():
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            use_batch, self.momentum if self.momentum is not None else 0.0, self.eps)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        stats = all_reduce(stats)
        n = stats[-1]
        mean = stats[: self.num_features] / n
        var = stats[self.num_features: 2 * self.num_features] / n - mean * mean
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def synchronize_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm layers by synchronized ones (call before wrapping in DDP). Frozen parts
    (`vislearn.common.freeze`) are left as they are: their statistics do not move, there is nothing to synchronize."""
    for name, child in model.named_children():
        if is_frozen(child):
            continue
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child) if device.type == "cuda"
                    else GlobalBatchNorm(child))
        else:
            synchronize_batchnorm(child, device)
    return model


def all_gather_objects(obj):
    """Every process's `obj`, in rank order (just [obj] in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
