"""Spatial-Temporal Interaction Network (STIN) over hand/object box tracks.

One class, switches for the paper's variants (STIN, +OIE, +NL) and for the official code's
quirks. Submodule names equal those of the official `model_lib.py` (VideoModelCoord,
VideoModelCoordLatent, VideoModelCoordLatentNL), so an official checkpoint loads with
`load_state_dict` once its `module.` prefix is stripped.

Pipeline, per video (T box frames, N slots, C features):
  coords (cx,cy,w,h) -> coord_to_feature            [T,N,C]   (+ OIE id embedding)
  each box ++ mean of the other boxes of its frame  -> spatial_node_fusion [T,N,C]
  each track: concat its T frame features          -> box_feature_fusion  [N,C]
  optional non-local blocks across the N tracks
  mean over tracks -> classifier

Masking (`mask_empty=True`, the default): an empty slot/frame is not a box. Every MLP is
applied to the real entries only: gathered rows in training, so BatchNorm statistics never see
padding; when traced for export, every row with the empty ones zeroed after (eval mode), the
same result with fixed shapes (what TorchScript/ONNX export needs). Whatever coordinates sit in an empty slot cannot
change any output. Empty entries are zero, are left out of the spatial mean of the others and of the non-local attention, and a
track with no box in any frame is left out of the mean over tracks.
`mask_empty=False` reproduces the official behaviour: every slot counts, the spatial message
is (sum - self) / (N - 1) and the track mean is over all N slots.

How it runs (the same function as the plain formulation, which `bench/stin_reference.py` keeps
and a test compares against: equal logits and gradients): boxes travel as packed rows
(`BoxRows`: only the real ones with a mask; gathered and scattered with index_select /
index_copy, whose backward passes are cheap), the Linear layers that read a concatenation are
split instead of fed one (the spatial one per number of other boxes in the frame, the identity
one through the 3 embedding rows), and the non-local 1x1 convolutions run as one Linear. About
0.75-0.9x the plain forward's training step, and masking costs less than it saves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.common.freeze import freeze_batchnorm

from .layers import masked_apply, masked_mean

NUM_BOX_IDS = 3  # 0 empty, 1 hand, 2 object
VARIANTS = {  # variant -> (oie, nonlocal_layers)
    "stin": (False, 0),
    "stin_oie": (True, 0),
    "stin_oie_nl": (True, 3),
}


def _mlp2(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Linear(no bias)-BN-ReLU twice: the official building block."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden, bias=False),
        nn.BatchNorm1d(d_hidden),
        nn.ReLU(inplace=True),
        nn.Linear(d_hidden, d_out, bias=False),
        nn.BatchNorm1d(d_out),
        nn.ReLU(),
    )


class NonLocal1d(nn.Module):
    """Embedded-Gaussian non-local block over a set of tracks, as in the official helper
    (softmax attention scaled by dim_inner**-0.5, output conv with bias, LayerNorm without
    affine over (C, tracks), residual add). With a mask, empty tracks are neither attended
    to nor counted in the LayerNorm statistics.

    The 1x1 convolutions keep the official names and shapes (so checkpoints load) but run as
    one matrix product on track rows: a kernel-1 Conv1d is a Linear, and far cheaper on CPU."""

    def __init__(self, dim: int, dim_inner: int, eps: float = 1e-5):
        super().__init__()
        self.dim_inner, self.eps = dim_inner, eps
        self.conv_theta = nn.Conv1d(dim, dim_inner, 1)
        self.conv_phi = nn.Conv1d(dim, dim_inner, 1)
        self.conv_g = nn.Conv1d(dim, dim_inner, 1)
        self.conv_out = nn.Conv1d(dim_inner, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,C,K] track features, mask [B,K] (True = real track) or None."""
        return self.forward_tracks(x.transpose(1, 2), mask).transpose(1, 2)

    def forward_tracks(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The same on x [B,K,C] (tracks as rows)."""
        convs = (self.conv_theta, self.conv_phi, self.conv_g)
        w = torch.cat([c.weight for c in convs])[:, :, 0]
        b = torch.cat([c.bias for c in convs])
        theta, phi, g = F.linear(x, w, b).split(self.dim_inner, -1)
        att = theta @ phi.transpose(1, 2) * self.dim_inner**-0.5  # [B,K,K]
        if mask is not None:
            # A video without any track attends to all (its output is discarded anyway);
            # this keeps softmax free of all -inf rows and so of NaN gradients.
            keys = mask | ~mask.any(1, keepdim=True)
            att = att.masked_fill(~keys[:, None, :], float("-inf"))
        p = F.linear(att.softmax(-1) @ g, self.conv_out.weight[:, :, 0], self.conv_out.bias)
        return x + self._layer_norm(p, mask)

    def _layer_norm(self, p: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Normalise each video's [K,C] block (over its real tracks only, with a mask)."""
        if mask is None:
            shape = p.shape[1:]
            if torch.jit.is_tracing():  # ONNX's LayerNormalization needs a constant shape: (K, C) are the
                shape = [int(s) for s in shape]  # checkpoint's (slots, features), fixed in the exported graph
            return F.layer_norm(p, shape, eps=self.eps)
        w = mask[:, :, None].to(p.dtype)
        count = (w.sum((1, 2), keepdim=True) * p.shape[2]).clamp(min=1)
        mean = (p * w).sum((1, 2), keepdim=True) / count
        var = ((p - mean) ** 2 * w).sum((1, 2), keepdim=True) / count
        return (p - mean) * torch.rsqrt(var + self.eps)


def _run(layers, x: torch.Tensor) -> torch.Tensor:
    """Apply modules in turn to rows [M,D] (the modules, not their functions: synchronized BN swaps them)."""
    for layer in layers:
        x = layer(x)
    return x


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by `scale` (broadcast)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


@dataclass
class BoxRows:
    """The boxes of a [B,T,N] batch that the MLPs see, as packed rows, and how to put them back.

    With a mask only the real entries are rows (so BatchNorm never sees padding), ordered by
    their number of other real boxes in the frame (`groups`); without one (official behaviour)
    every entry is a row, in track order (b, n, t). Tracks: the real ones (any box in any frame) with a
    mask, all B*N without.
    """

    B: int
    T: int
    N: int
    index: torch.Tensor | None  # [M] flat (b,t,n) position of each row; None: all, in (b,n,t) order
    frame: torch.Tensor | None  # [M] flat (b,t) of each row
    inv_others: torch.Tensor | None  # [M,1] 1 / number of other boxes in the frame (0 when none)
    groups: list[tuple[int, int, float]]  # (first row, end row, 1/others) of rows sharing it
    track_pos: torch.Tensor | None  # [M] row in the packed track buffer [K*T] of each row
    track_index: torch.Tensor | None  # [K] flat (b,n) of each real track; None: all B*N
    track_mask: torch.Tensor | None  # [B,N] or None

    @property
    def num_rows(self) -> int:
        return self.B * self.T * self.N if self.index is None else self.index.shape[0]

    @property
    def num_frames(self) -> int:
        return self.B * self.T

    @property
    def num_tracks(self) -> int:
        return self.B * self.N if self.track_index is None else self.track_index.shape[0]

    @classmethod
    def of(cls, mask: torch.Tensor | None, B: int, T: int, N: int, device: torch.device) -> "BoxRows":
        if mask is None:  # every entry, in track order (b, n, t): tracks are then plain views
            inv = 1.0 / max(N - 1, 1)
            return cls(B, T, N, None, None, None, [(0, B * T * N, inv)], None, None, None)
        n_others = (mask.sum(2, keepdim=True) - 1).clamp(min=0).expand(B, T, N).reshape(-1)
        real = mask.reshape(-1).nonzero().squeeze(1)
        n_real, order = torch.sort(n_others[real], stable=True)
        index = real[order]
        counts = torch.bincount(n_real, minlength=N).tolist()
        inv_of = torch.tensor([0.0] + [1.0 / n for n in range(1, N)], device=device)
        groups, start = [], 0
        for n, c in enumerate(counts):
            if c:
                groups.append((start, start + c, 0.0 if n == 0 else 1.0 / n))
                start += c
        track_mask = mask.any(1)
        track_index = track_mask.reshape(-1).nonzero().squeeze(1)
        track_rank = torch.full((B * N,), -1, dtype=torch.long, device=device)
        track_rank[track_index] = torch.arange(track_index.shape[0], device=device)
        b, t, n = index // (T * N), (index // N) % T, index % N
        return cls(B, T, N, index, index // N, inv_of[n_real][:, None], groups, track_rank[b * N + n] * T + t,
                   track_index, track_mask)

    def frame_sum(self, f: torch.Tensor) -> torch.Tensor:
        """Sum of the rows of each frame [B*T,C]."""
        if self.index is None:
            return f.view(self.B, self.N, self.T, -1).sum(1).reshape(self.num_frames, -1)
        return f.new_zeros(self.num_frames, f.shape[1]).index_add(0, self.frame, f)

    def add_frame_term(self, y: torch.Tensor, per_frame: torch.Tensor) -> torch.Tensor:
        """y + per_frame[frame of the row] / (other boxes in the frame), 0 where there are none."""
        if self.index is None:
            inv = self.groups[0][2]
            return (y.view(self.B, self.N, self.T, -1) + per_frame.view(self.B, 1, self.T, -1) * inv).view_as(y)
        return y + per_frame.index_select(0, self.frame) * self.inv_others

    def take(self, grid: torch.Tensor) -> torch.Tensor:
        """The rows [M,D] of a [B,T,N,D] tensor."""
        if self.index is None:
            return grid.transpose(1, 2).reshape(self.B * self.N * self.T, -1)
        return grid.reshape(self.B * self.T * self.N, -1).index_select(0, self.index)

    def tracks(self, f: torch.Tensor) -> torch.Tensor:
        """Box rows [M,C] -> track rows [K, T*C] (frames in order, zeros where a track has no box)."""
        C = f.shape[1]
        if self.index is None:
            return f.view(self.num_tracks, self.T * C)
        out = f.new_zeros(self.num_tracks * self.T, C).index_copy(0, self.track_pos, f)
        return out.view(self.num_tracks, self.T * C)

    def track_grid(self, h: torch.Tensor) -> torch.Tensor:
        """Track rows [K,C] -> [B,N,C], zeros for absent tracks."""
        if self.track_index is None:
            return h.view(self.B, self.N, -1)
        out = h.new_zeros(self.B * self.N, h.shape[1]).index_copy(0, self.track_index, h)
        return out.view(self.B, self.N, -1)

    def track_rows(self, grid: torch.Tensor) -> torch.Tensor:
        """[B,N,C] -> track rows [K,C]."""
        flat = grid.reshape(self.B * self.N, -1)
        return flat if self.track_index is None else flat.index_select(0, self.track_index)

    def track_mean(self, h: torch.Tensor) -> torch.Tensor:
        """Mean of each video's real tracks [B,C] (zero for a video without any)."""
        return masked_mean(self.track_grid(h), self.track_mask, 1)


class STIN(nn.Module):
    """STIN on box coordinates; see the module docstring.

    Args:
        num_classes: output classes.
        feature_dim: C, the box/track feature size (official 256).
        num_frames: T box frames per clip (official 8).
        num_slots: N box slots, slot 0 the hand (official 4).
        oie: add the object identity embedding (empty/hand/object, dim C//2).
        nonlocal_layers: non-local blocks across tracks (official +NL: 3).
        mask_empty: treat empty slots/frames as absent (clean); False = official behaviour.
        freeze_bn: keep every BatchNorm in eval mode with frozen affine parameters, as the
            official +NL model does from initialisation on.
    """

    needs_frames = False
    needs_boxes = True

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 256,
        num_frames: int = 8,
        num_slots: int = 4,
        oie: bool = False,
        nonlocal_layers: int = 0,
        mask_empty: bool = True,
        freeze_bn: bool = False,
    ):
        super().__init__()
        C = feature_dim
        self.num_classes, self.feature_dim = num_classes, C
        self.num_frames, self.num_slots = num_frames, num_slots
        self.oie, self.mask_empty, self.freeze_bn = oie, mask_empty, freeze_bn

        self.coord_to_feature = _mlp2(4, C // 2, C)
        if oie:
            # scale_grad_by_freq as in the official code: hands are rarer than objects.
            self.category_embed_layer = nn.Embedding(
                NUM_BOX_IDS, C // 2, padding_idx=0, scale_grad_by_freq=True
            )
            self.coord_category_fusion = nn.Sequential(
                nn.Linear(C + C // 2, C, bias=False), nn.BatchNorm1d(C), nn.ReLU(inplace=True)
            )
        self.spatial_node_fusion = _mlp2(2 * C, C, C)
        self.box_feature_fusion = _mlp2(num_frames * C, C, C)
        # Sequential(NonLocal1d, Conv1d, BN, ReLU): the official layout, so keys match.
        self.nonlocal_fusion = nn.ModuleList(
            nn.Sequential(
                NonLocal1d(C, C // 2), nn.Conv1d(C, C, 1, bias=False), nn.BatchNorm1d(C), nn.ReLU()
            )
            for _ in range(nonlocal_layers)
        )
        self.classifier = nn.Sequential(
            nn.Linear(C, C),
            nn.ReLU(inplace=True),
            nn.Linear(C, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
        if freeze_bn:
            freeze_batchnorm(self)

    def _check(self, boxes, box_ids, box_mask):
        want = (self.num_frames, self.num_slots)
        if boxes.dim() != 4 or tuple(boxes.shape[1:]) != (*want, 4):
            raise ValueError(f"STIN: boxes must be [B,{want[0]},{want[1]},4], got {list(boxes.shape)}")
        B = boxes.shape[0]
        if tuple(box_mask.shape) != (B, *want):
            raise ValueError(f"STIN: box_mask must be [B,T,N]={[B, *want]}, got {list(box_mask.shape)}")
        if tuple(box_ids.shape) != (B, want[1]):
            raise ValueError(f"STIN: box_ids must be [B,N]={[B, want[1]]}, got {list(box_ids.shape)}")

    def features(self, batch: dict) -> torch.Tensor:
        """Pooled video feature [B, feature_dim] (the mean over tracks)."""
        boxes, box_ids, box_mask = batch["boxes"], batch["box_ids"], batch["box_mask"]
        if torch.jit.is_tracing():  # export (TorchScript trace, ONNX): shapes that do not hang on the mask,
            return self._features_fixed_shapes(boxes, box_ids, box_mask)  # and no Python checks in the graph
        self._check(boxes, box_ids, box_mask)
        return self._features_packed(boxes, box_ids, box_mask)

    def _features_packed(self, boxes, box_ids, box_mask) -> torch.Tensor:
        """Packed rows (`BoxRows`): the fast path (training and eager eval), and the one that keeps padding
        out of BatchNorm's batch statistics in training."""
        B, T, N, _ = boxes.shape
        box_mask = box_mask.bool()
        rows = BoxRows.of(box_mask if self.mask_empty else None, B, T, N, boxes.device)
        if rows.num_rows == 0:  # no real box in the whole batch
            return boxes.new_zeros(B, self.feature_dim)

        f = _run(self.coord_to_feature, rows.take(boxes.float()))  # [M,C]
        if self.oie:
            # Per-frame identity, 0 (padding embedding) where the box is absent: official.
            frame_ids = box_ids.long()[:, None, :] * box_mask.long()  # [B,T,N]
            f = self._identity_fusion(f, rows.take(frame_ids[..., None]).squeeze(1))
        f = self._spatial_interaction(f, rows)

        # Temporal interaction: a track is its T frame features concatenated (frame order).
        h = _run(self.box_feature_fusion, rows.tracks(f))  # [K,C]
        for layer in self.nonlocal_fusion:
            h = self._nonlocal(layer, h, rows)
        return rows.track_mean(h)

    def _identity_fusion(self, f: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """coord_category_fusion(cat[f, embedding(ids)]) without building the concatenation: the
        embedding half of the Linear is applied to the 3 embedding rows once, then looked up."""
        linear, *rest = self.coord_category_fusion
        C = self.feature_dim
        emb = self.category_embed_layer
        # Embedding gradients as nn.Embedding(padding_idx=0, scale_grad_by_freq=True) gives them.
        counts = torch.bincount(ids, minlength=emb.num_embeddings).to(f.dtype)
        scale = 1.0 / counts.clamp(min=1)
        scale[emb.padding_idx] = 0.0
        table = _ScaleGrad.apply(emb.weight, scale[:, None])
        w = linear.weight
        y = F.linear(f, w[:, :C]) + F.linear(table, w[:, C:]).index_select(0, ids)
        if linear.bias is not None:
            y = y + linear.bias
        return _run(rest, y)

    def _spatial_interaction(self, f: torch.Tensor, rows: "BoxRows") -> torch.Tensor:
        """spatial_node_fusion(cat[f, mean of the other boxes of the frame]).

        With W = [Wa | Wb] the first Linear and S the frame sum, a row with n others gives
        f Wa^T + (S - f) Wb^T / n = f (Wa - Wb/n)^T + (S Wb^T) / n: one C x C product per row
        (rows are grouped by n) and one per frame, instead of a 2C x C product per row."""
        linear, *rest = self.spatial_node_fusion
        C = self.feature_dim
        wa, wb = linear.weight[:, :C], linear.weight[:, C:]
        parts = [F.linear(f[a:b], wa - inv * wb) for a, b, inv in rows.groups]
        y = rows.add_frame_term(torch.cat(parts) if len(parts) > 1 else parts[0], F.linear(rows.frame_sum(f), wb))
        if linear.bias is not None:
            y = y + linear.bias
        return _run(rest, y)

    def _nonlocal(self, layer: nn.Sequential, h: torch.Tensor, rows: "BoxRows") -> torch.Tensor:
        """Non-local block across each video's tracks, then Conv1d(k=1)+BN+ReLU on the real tracks."""
        nl, conv, bn, relu = layer
        x = rows.track_rows(nl.forward_tracks(rows.track_grid(h), rows.track_mask))
        return relu(bn(F.linear(x, conv.weight[:, :, 0], conv.bias)))

    def _features_fixed_shapes(self, boxes, box_ids, box_mask) -> torch.Tensor:
        """For export (eval mode, traced): every MLP runs on every row and empty rows are zeroed after (no
        batch statistics in eval mode, so the same result as `_features_packed`, a test checks it), with
        shapes that do not depend on the mask: what tracing for TorchScript/ONNX needs."""
        B, T, N, _ = boxes.shape
        C = self.feature_dim
        box_mask = box_mask.bool()
        mask = box_mask if self.mask_empty else None  # [B,T,N] or None (all real)

        rowwise = True  # eval: no batch statistics, so no gather (export-friendly, `masked_apply`)
        f = masked_apply(self.coord_to_feature, boxes.float(), mask, C, rowwise)  # [B,T,N,C]
        if self.oie:
            # Per-frame identity, 0 (padding embedding) where the box is absent: official.
            frame_ids = box_ids.long()[:, None, :].expand(B, T, N) * box_mask.long()
            f = torch.cat([f, self.category_embed_layer(frame_ids)], -1)
            f = masked_apply(self.coord_category_fusion, f, mask, C, rowwise)

        # Spatial interaction: each box with the mean of the other boxes of its frame.
        others = f.sum(2, keepdim=True) - f
        if mask is None:
            others = others / max(N - 1, 1)
        else:
            n_others = mask.sum(2, keepdim=True) - mask.long()  # [B,T,N]
            others = others / n_others.unsqueeze(-1).clamp(min=1).to(f.dtype)
        f = masked_apply(self.spatial_node_fusion, torch.cat([f, others], -1), mask, C, rowwise)

        # Temporal interaction: a track is its T frame features concatenated (frame order).
        tracks = f.transpose(1, 2).reshape(B, N, T * C)
        track_mask = None if mask is None else mask.any(1)  # [B,N]
        h = masked_apply(self.box_feature_fusion, tracks, track_mask, C, rowwise)  # [B,N,C]

        for layer in self.nonlocal_fusion:
            h = self._nonlocal_fixed_shapes(layer, h, track_mask)
        return masked_mean(h, track_mask, 1)

    def _nonlocal_fixed_shapes(self, layer: nn.Sequential, h, track_mask):
        nl, conv, bn, relu = layer
        x = nl(h.transpose(1, 2), track_mask).transpose(1, 2)  # [B,N,C]

        def pointwise(rows):  # Conv1d(k=1)+BN+ReLU on rows [M,C]
            return relu(bn(conv(rows.unsqueeze(-1)))).squeeze(-1)

        return masked_apply(pointwise, x, track_mask, self.feature_dim, True)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))


def stin_preset(
    variant: str,
    num_classes: int,
    *,
    official: bool = False,
    feature_dim: int = 256,
    num_frames: int = 8,
    num_slots: int = 4,
    mask_empty: bool | None = None,
    freeze_bn: bool | None = None,
) -> STIN:
    """Build a paper variant ("stin", "stin_oie", "stin_oie_nl").

    `official=True` reproduces the official code's behaviour (no slot mask; BatchNorm frozen
    for +NL); explicit `mask_empty` / `freeze_bn` override either default.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown STIN variant {variant!r}; valid: {sorted(VARIANTS)}")
    oie, nonlocal_layers = VARIANTS[variant]
    if mask_empty is None:
        mask_empty = not official
    if freeze_bn is None:
        freeze_bn = official and nonlocal_layers > 0
    return STIN(
        num_classes,
        feature_dim=feature_dim,
        num_frames=num_frames,
        num_slots=num_slots,
        oie=oie,
        nonlocal_layers=nonlocal_layers,
        mask_empty=mask_empty,
        freeze_bn=freeze_bn,
    )


def stin_official(variant: str, num_classes: int = 174, **kwargs) -> STIN:
    """The official architecture and behaviour (C=256, T=8, N=4 unless overridden)."""
    return stin_preset(variant, num_classes, official=True, **kwargs)


# Builders for the model table: `create_model("stin_oie", 174, official=True)`.
stin = functools.partial(stin_preset, "stin")
stin_oie = functools.partial(stin_preset, "stin_oie")
stin_oie_nl = functools.partial(stin_preset, "stin_oie_nl")
