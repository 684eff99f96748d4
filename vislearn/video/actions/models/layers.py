"""Masked row-wise ops shared by the box models (STIN) and the region-graph model (STRG).

Both work on padded sets: box slots that may be empty, frames without a box, tracks that never
appear. A mask marks the real entries; these ops keep the padding out of every result and out of
BatchNorm's batch statistics.
"""

from __future__ import annotations

import torch


def masked_apply(fn, x: torch.Tensor, mask: torch.Tensor | None, out_dim: int, rowwise: bool = False) -> torch.Tensor:
    """Apply a row-wise `fn` ([M,D] -> [M,out_dim]) to x[..., D] where `mask` is True.

    Rows where `mask` is False are zero in the output. Gathering the real rows (instead of
    zeroing afterwards) is what keeps padding out of BatchNorm's batch statistics.
    `rowwise=True` says `fn` treats each row on its own (no BatchNorm in training mode, e.g. a model
    in eval mode): then `fn` runs on every row and the others are zeroed, the same result without
    the data-dependent gather (whose row count depends on the mask), so the graph has fixed shapes
    and exports to TorchScript and ONNX with a dynamic batch size.
    """
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    if mask is None:
        return fn(flat).reshape(*lead, out_dim)
    if rowwise:  # masked_fill, not a product: whatever padding gives (even inf/NaN) becomes 0
        return fn(flat).reshape(*lead, out_dim).masked_fill(~mask.unsqueeze(-1), 0.0)
    # index_select / index_copy rather than x[mask] / out[mask] = y: their backward passes are a
    # plain index_add / index_select instead of an accumulating index_put.
    index = mask.reshape(-1).nonzero().squeeze(1)
    if index.shape[0] == 0:  # no real entry in the whole batch
        return x.new_zeros(*lead, out_dim)
    y = fn(flat.index_select(0, index))
    return y.new_zeros(flat.shape[0], out_dim).index_copy(0, index, y).reshape(*lead, out_dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of x over `dim` counting only entries where mask (x.shape minus the last dim)."""
    if mask is None:
        return x.mean(dim)
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(dim) / w.sum(dim).clamp(min=1)
