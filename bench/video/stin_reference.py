"""STIN's forward as it was before the speed work (boolean-mask gathers, concatenations, Conv1d
layers): the baseline `bench_models.py` times and the reference `tests/test_models_stin_fast.py`
checks the fast forward against (equal logits and gradients). Same modules, same weights."""

import torch
import torch.nn.functional as F


def _masked_apply(fn, x, mask, out_dim):
    if mask is None:
        return fn(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], out_dim)
    rows = x[mask]
    out = x.new_zeros(*x.shape[:-1], out_dim)
    out[mask] = fn(rows)
    return out


def _masked_mean(x, mask, dim):
    if mask is None:
        return x.mean(dim)
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(dim) / w.sum(dim).clamp(min=1)


def _nonlocal_reference(nl, x, mask):
    """The block as first written: Conv1d layers on [B,C,K], group_norm / masked LayerNorm."""
    theta, phi, g = nl.conv_theta(x), nl.conv_phi(x), nl.conv_g(x)
    att = torch.einsum("bck,bcl->bkl", theta, phi) * nl.dim_inner**-0.5
    if mask is not None:
        keys = mask | ~mask.any(1, keepdim=True)
        att = att.masked_fill(~keys[:, None, :], float("-inf"))
    p = nl.conv_out(torch.einsum("bkl,bcl->bck", att.softmax(-1), g))
    if mask is None:
        return x + F.group_norm(p, 1, eps=nl.eps)
    w = mask[:, None, :].to(p.dtype)
    count = (w.sum((1, 2), keepdim=True) * p.shape[1]).clamp(min=1)
    mean = (p * w).sum((1, 2), keepdim=True) / count
    var = ((p - mean) ** 2 * w).sum((1, 2), keepdim=True) / count
    return x + (p - mean) * torch.rsqrt(var + nl.eps)


def reference_logits(model, batch):
    """STIN.forward as it was before the speed work (boolean-mask gathers, concatenations)."""
    boxes, box_ids, box_mask = batch["boxes"], batch["box_ids"], batch["box_mask"].bool()
    B, T, N, _ = boxes.shape
    C = model.feature_dim
    mask = box_mask if model.mask_empty else None
    f = _masked_apply(model.coord_to_feature, boxes.float(), mask, C)
    if model.oie:
        frame_ids = box_ids.long()[:, None, :].expand(B, T, N) * box_mask.long()
        f = torch.cat([f, model.category_embed_layer(frame_ids)], -1)
        f = _masked_apply(model.coord_category_fusion, f, mask, C)
    others = f.sum(2, keepdim=True) - f
    if mask is None:
        others = others / max(N - 1, 1)
    else:
        n_others = mask.sum(2, keepdim=True) - mask.long()
        others = others / n_others.unsqueeze(-1).clamp(min=1).to(f.dtype)
    f = _masked_apply(model.spatial_node_fusion, torch.cat([f, others], -1), mask, C)
    tracks = f.transpose(1, 2).reshape(B, N, T * C)
    track_mask = None if mask is None else mask.any(1)
    h = _masked_apply(model.box_feature_fusion, tracks, track_mask, C)
    for nl, conv, bn, relu in model.nonlocal_fusion:
        x = _nonlocal_reference(nl, h.transpose(1, 2), track_mask).transpose(1, 2)
        h = _masked_apply(lambda r: relu(bn(conv(r.unsqueeze(-1)))).squeeze(-1), x, track_mask, C)
    return model.classifier(_masked_mean(h, track_mask, 1))
