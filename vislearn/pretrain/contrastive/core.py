"""MoCo-v2's machinery, once, for every contrastive learner here: a momentum (key) copy of the query network,
queues of past keys as negatives, InfoNCE, the MLP projection head, and "shuffled BN" for the key pass.

Shuffled BN: with one process, a key encoder whose BatchNorm sees the whole batch lets a query find its key through
batch statistics (MoCo's "cheating"). MoCo shuffles the batch across GPUs; here the key pass runs on a shuffled
batch in `key_chunks` parts, each normalised by its own statistics (MoCo's single-GPU recipe), then unshuffled.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Sequential):
    """MoCo-v2's head, Linear -> ReLU -> Linear, with BatchNorm after the first Linear (SimCLR's and MoCo-v3's).
    Without it a randomly initialised CNN's pooled features share one large common direction, every key lands
    near every other (measured: mean cosine 0.999 between queued keys after 70 steps on the object set) and a
    short run learns nothing; with it the common direction is gone from the first step."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_dim))


class Queue(nn.Module):
    """A FIFO of `size` L2-normalised keys of `dim` (buffers: saved with the model, so a resumed run has them)."""

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        n, size = len(keys), len(self.keys)
        if n == 0:
            return
        if n >= size:
            self.keys.copy_(keys[-size:])
            self.ptr.zero_()
            return
        p = int(self.ptr)
        end = p + n
        if end <= size:
            self.keys[p:end] = keys
        else:
            self.keys[p:] = keys[:size - p]
            self.keys[:end - size] = keys[size - p:]
        self.ptr.fill_(end % size)


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float,
             extra_negatives: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of normalised queries q [B,D] against their keys k [B,D] (positives) and `negatives` [K,D] shared
    by all; `extra_negatives` [B,M,D]: more negatives per query. Returns (loss, top-1 accuracy of the positive)."""
    pos = (q * k).sum(dim=1, keepdim=True)
    logits = [pos, q @ negatives.t()]
    if extra_negatives is not None and extra_negatives.shape[1]:
        logits.insert(1, torch.einsum("bd,bmd->bm", q, extra_negatives))
    logits = torch.cat(logits, dim=1) / temperature
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target), (logits.argmax(dim=1) == 0).float().mean()


def momentum_copy(module: nn.Module) -> nn.Module:
    """The key network: a copy that gradients never reach."""
    key = copy.deepcopy(module)
    for p in key.parameters():
        p.requires_grad_(False)
    return key


@torch.no_grad()
def momentum_update(query: nn.Module, key: nn.Module, m: float) -> None:
    """key <- m key + (1 - m) query, for the parameters (BatchNorm statistics are the key network's own, as
    MoCo's)."""
    for pq, pk in zip(query.parameters(), key.parameters()):
        pk.mul_(m).add_(pq.detach(), alpha=1 - m)


@torch.no_grad()
def shuffled_forward(fn, x: torch.Tensor, chunks: int, generator: torch.Generator):
    """fn over a shuffled x in `chunks` parts (each with its own BatchNorm statistics), outputs back in x's order.
    fn returns a tensor or a dict of tensors, batch first."""
    perm = torch.randperm(len(x), generator=generator)
    inverse = torch.argsort(perm)
    parts = [fn(part) for part in x[perm].chunk(max(1, min(chunks, len(x))))]
    if isinstance(parts[0], dict):
        return {key: torch.cat([p[key] for p in parts])[inverse] for key in parts[0]}
    return torch.cat(parts)[inverse]
