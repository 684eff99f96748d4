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
padding; in eval mode every row with the empty ones zeroed after, the same result with fixed
shapes (what TorchScript/ONNX export needs). Whatever coordinates sit in an empty slot cannot
change any output. Empty entries are zero, are left out of the spatial mean of the others and of the non-local attention, and a
track with no box in any frame is left out of the mean over tracks.
`mask_empty=False` reproduces the official behaviour: every slot counts, the spatial message
is (sum - self) / (N - 1) and the track mean is over all N slots.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from common.freeze import freeze_batchnorm

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
    to nor counted in the LayerNorm statistics."""

    def __init__(self, dim: int, dim_inner: int, eps: float = 1e-5):
        super().__init__()
        self.dim_inner, self.eps = dim_inner, eps
        self.conv_theta = nn.Conv1d(dim, dim_inner, 1)
        self.conv_phi = nn.Conv1d(dim, dim_inner, 1)
        self.conv_g = nn.Conv1d(dim, dim_inner, 1)
        self.conv_out = nn.Conv1d(dim_inner, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,C,K] track features, mask [B,K] (True = real track) or None."""
        theta, phi, g = self.conv_theta(x), self.conv_phi(x), self.conv_g(x)
        att = torch.einsum("bck,bcl->bkl", theta, phi) * self.dim_inner**-0.5
        if mask is not None:
            # A video without any track attends to all (its output is discarded anyway);
            # this keeps softmax free of all -inf rows and so of NaN gradients.
            keys = mask | ~mask.any(1, keepdim=True)
            att = att.masked_fill(~keys[:, None, :], float("-inf"))
        att = att.softmax(-1)
        p = self.conv_out(torch.einsum("bkl,bcl->bck", att, g))
        return x + self._layer_norm(p, mask)

    def _layer_norm(self, p: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return F.group_norm(p, 1, eps=self.eps)
        w = mask[:, None, :].to(p.dtype)
        count = (w.sum((1, 2), keepdim=True) * p.shape[1]).clamp(min=1)
        mean = (p * w).sum((1, 2), keepdim=True) / count
        var = ((p - mean) ** 2 * w).sum((1, 2), keepdim=True) / count
        return (p - mean) * torch.rsqrt(var + self.eps)


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
        if not torch.jit.is_tracing():  # a traced graph keeps no Python checks (and should not warn about them)
            self._check(boxes, box_ids, box_mask)
        B, T, N, _ = boxes.shape
        C = self.feature_dim
        box_mask = box_mask.bool()
        mask = box_mask if self.mask_empty else None  # [B,T,N] or None (all real)

        rowwise = not self.training  # eval: no batch statistics, so no gather (export-friendly, `masked_apply`)
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
            h = self._nonlocal(layer, h, track_mask)
        return masked_mean(h, track_mask, 1)

    def _nonlocal(self, layer: nn.Sequential, h, track_mask):
        nl, conv, bn, relu = layer
        x = nl(h.transpose(1, 2), track_mask).transpose(1, 2)  # [B,N,C]

        def pointwise(rows):  # Conv1d(k=1)+BN+ReLU on rows [M,C]
            return relu(bn(conv(rows.unsqueeze(-1)))).squeeze(-1)

        return masked_apply(pointwise, x, track_mask, self.feature_dim, not self.training)

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
