"""Scene (pixel) models: a 3D CNN trunk -> global average pool -> 512-d feature -> classifier.

Trunks come from torchvision.models.video (r3d_18, mc3_18, r2plus1d_18, swin3d_t, s3d, mvit_v1_b), built
with weights=None; pretrained weights come only from local files (`load_backbone_weights`).
`small3d` is a tiny trunk for CPU demos. The I3D ResNet-50 trunk lives in `i3d.py`.

A trunk maps frames [B,3,T,H,W] to a feature map [B,D,T',H',W'] and has `out_dim` = D.
Pooling is a plain mean over (T',H',W'), i.e. adaptive: any clip length and size works
(torchvision's s3d has a fixed AvgPool3d((2,7,7)) that fails on 8-frame clips; it is not used).
Trunk state-dict keys equal the torchvision model's keys minus its classification head, so a
torchvision-format checkpoint loads straight into a trunk.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import video as tvv

from vislearn.common.checkpoint import read_state_dict
from vislearn.common.errors import UserError

HEAD_PREFIXES = ("fc.", "head.", "classifier.")  # classification heads of torchvision models


# ----------------------------------------------------------------------------- weights
def _preview(keys: Iterable[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_state_checked(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    source: str = "<state dict>",
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Load `state` into `module` with a strict key and shape check.

    Keys under `ignore_prefixes` are skipped on both sides (e.g. a classification head of a
    different size). If no key matches but the file holds a whole scene model (keys under
    'backbone.'), its trunk part is used. Raises a UserError (a ValueError) naming the file and the
    missing / unexpected / mis-shaped keys: a file for another architecture never loads in part.
    """
    ignore = tuple(ignore_prefixes)
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    if not own.keys() & state.keys() and any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"{source}: weights do not fit {type(module).__name__}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:5])}")
        raise UserError("; ".join(parts))
    module.load_state_dict(state, strict=False)


def load_backbone_weights(
    model: nn.Module, path: str | os.PathLike, ignore_prefixes: Iterable[str] = HEAD_PREFIXES
) -> nn.Module:
    """Load a local checkpoint file into `model` (a trunk, or any module) strictly, except
    for classification-head keys. Returns `model`."""
    load_state_checked(model, read_state_dict(path), os.fspath(path), ignore_prefixes)
    return model


# ----------------------------------------------------------------------------- trunks
class VideoResNetTrunk(nn.Module):
    """torchvision VideoResNet (r3d_18, mc3_18, r2plus1d_18) without avgpool/fc."""

    out_dim = 512

    def __init__(self, net: tvv.VideoResNet):
        super().__init__()
        self.stem, self.layer1, self.layer2 = net.stem, net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4

    def forward(self, x):
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SwinTrunk(nn.Module):
    """torchvision SwinTransformer3d without avgpool/head; returns [B,C,T,H,W]."""

    def __init__(self, net: tvv.SwinTransformer3d):
        super().__init__()
        self.patch_embed, self.pos_drop = net.patch_embed, net.pos_drop
        self.features, self.norm = net.features, net.norm
        self.out_dim = net.num_features

    def forward(self, x):
        x = self.norm(self.features(self.pos_drop(self.patch_embed(x))))
        return x.permute(0, 4, 1, 2, 3)


class S3DTrunk(nn.Module):
    """torchvision S3D features; its fixed (2,7,7) average pool is replaced by the scene
    model's global mean, so 8-frame and small clips work."""

    out_dim = 1024

    def __init__(self, net: tvv.S3D):
        super().__init__()
        self.features = net.features

    def forward(self, x):
        return self.features(x)


class MViTTrunk(nn.Module):
    """torchvision MViT (mvit_v1_b) without its head; returns the patch tokens as a map [B,C,T/2,H/32,W/32].

    Its positional encoding has a fixed size: clips must be 16x224x224 (`num_rgb_frames=16`,
    `input_size=224`). The scene model pools the patch tokens (torchvision's classifier reads the class
    token instead; a Kinetics file's head is not used here either way).
    """

    def __init__(self, net: tvv.MViT):
        super().__init__()
        self.conv_proj, self.pos_encoding, self.blocks, self.norm = net.conv_proj, net.pos_encoding, net.blocks, net.norm
        self.out_dim = net.norm.normalized_shape[0]
        pe = net.pos_encoding
        self.clip_size = (pe.temporal_size * net.conv_proj.stride[0], *(s * net.conv_proj.stride[1] for s in pe.spatial_size))

    def forward(self, x):
        if tuple(x.shape[2:]) != self.clip_size:
            raise ValueError(f"mvit_v1_b takes clips of {'x'.join(map(str, self.clip_size))} (T x H x W; its positional "
                             f"encoding has a fixed size), got {'x'.join(map(str, x.shape[2:]))}: set num_rgb_frames=16, "
                             f"input_size=224")
        x = self.pos_encoding(self.conv_proj(x).flatten(2).transpose(1, 2))
        thw = (self.pos_encoding.temporal_size, *self.pos_encoding.spatial_size)
        for block in self.blocks:
            x, thw = block(x, thw)
        x = self.norm(x)[:, 1:]  # without the class token
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *thw)


def _conv_bn(c_in, c_out, kernel, stride):
    pad = tuple(k // 2 for k in kernel)
    return [
        nn.Conv3d(c_in, c_out, kernel, stride, pad, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    ]


class Small3D(nn.Sequential):
    """A ~0.7M-parameter 3D CNN for CPU demos and tests (not a paper model).

    2D stem, then three 3x3x3 convs (two of them halving time and space) and a 1x1x1
    expansion; ~0.4 GMAC per 8x112x112 clip.
    """

    def __init__(self, width: int = 24, out_dim: int = 256):
        w = width
        super().__init__(
            *_conv_bn(3, w, (1, 5, 5), (1, 2, 2)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_conv_bn(w, 2 * w, (3, 3, 3), (1, 1, 1)),
            *_conv_bn(2 * w, 4 * w, (3, 3, 3), (2, 2, 2)),
            *_conv_bn(4 * w, 8 * w, (3, 3, 3), (2, 2, 2)),
            *_conv_bn(8 * w, out_dim, (1, 1, 1), (1, 1, 1)),
        )
        self.out_dim = out_dim


# ----------------------------------------------------------------------------- model
def trunk_map(backbone: nn.Module, batch: dict) -> torch.Tensor:
    """The trunk's feature map of a batch: from `frames` [B,3,T,H,W], or from `frame_features` (the
    output of the trunk's frozen per-frame part, read from `actions.feature_cache`) when the batch has
    them and the trunk has a `temporal_features` part to finish with."""
    cached = batch.get("frame_features")
    if cached is not None and hasattr(backbone, "temporal_features"):
        return backbone.temporal_features(cached)
    frames = batch["frames"]
    if frames.dim() != 5 or frames.shape[1] != 3:
        raise ValueError(f"{type(backbone).__name__}: frames must be [B,3,T,H,W], got {list(frames.shape)}")
    return backbone(frames)


class FrameOrderHead(nn.Module):
    """A trunk map -> per-frame spatial mean -> Linear(D, frame_dim)+ReLU per frame -> the `num_frames`
    frame vectors concatenated in time order [B, num_frames * frame_dim].

    The mean over time that I3D and TSM end with cannot tell a clip from its reverse ("pushing left to
    right" from "right to left", "opening" from "closing") unless the trunk has learned to; with frozen
    or barely trained ImageNet features it has not, and this head keeps the order. The map's time length
    is pooled (adaptive mean) to `num_frames` when it differs.
    """

    def __init__(self, in_dim: int, num_frames: int = 8, frame_dim: int = 128):
        super().__init__()
        if num_frames < 1 or frame_dim < 1:
            raise ValueError(f"num_frames and frame_dim must be positive, got {num_frames}, {frame_dim}")
        self.num_frames, self.out_dim = num_frames, num_frames * frame_dim
        self.frame = nn.Sequential(nn.Linear(in_dim, frame_dim), nn.ReLU(inplace=True))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        x = fmap.mean((3, 4))  # [B,D,T']
        if x.shape[2] != self.num_frames:
            x = F.adaptive_avg_pool1d(x, self.num_frames)
        return self.frame(x.transpose(1, 2)).flatten(1)


def pool_map(fmap: torch.Tensor, proj: nn.Module, frame_head: nn.Module | None = None) -> torch.Tensor:
    """The scene feature of a trunk map: `proj` of its global mean, or of `frame_head`'s ordered frames."""
    return proj(fmap.mean((2, 3, 4)) if frame_head is None else frame_head(fmap))


class SceneModel(nn.Module):
    """Trunk -> pooling -> Linear(., feature_dim)+ReLU -> dropout -> linear.

    Pooling: head="mean" (default) the global mean over (T,H,W), as I3D and TSM; head="frames" the
    `FrameOrderHead` (frames in time order, `num_frames` x `frame_dim`).
    `features(batch)` is the pooled `feature_dim` (512) scene feature used by fusion;
    `feature_map(batch)` is the trunk's map, e.g. for RoIAlign heads.
    """

    needs_frames = True
    needs_boxes = False

    def __init__(self, backbone: nn.Module, num_classes: int, feature_dim: int = 512, dropout: float = 0.5,
                 head: str = "mean", num_frames: int = 8, frame_dim: int = 128, proj_relu: bool = True):
        super().__init__()
        if head not in ("mean", "frames"):
            raise ValueError(f"head must be 'mean' or 'frames', got {head!r}")
        self.backbone = backbone
        self.num_classes, self.feature_dim = num_classes, feature_dim
        self.frame_head = FrameOrderHead(backbone.out_dim, num_frames, frame_dim) if head == "frames" else None
        pooled_dim = backbone.out_dim if self.frame_head is None else self.frame_head.out_dim
        act = [nn.ReLU(inplace=True)] if proj_relu else []  # the official I3D head has none (`i3d_r50(official=True)`)
        self.proj = nn.Sequential(nn.Linear(pooled_dim, feature_dim), *act)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def feature_map(self, batch: dict) -> torch.Tensor:
        return trunk_map(self.backbone, batch)

    def features(self, batch: dict) -> torch.Tensor:
        return pool_map(self.feature_map(batch), self.proj, self.frame_head)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))


TORCHVISION_TRUNKS = {
    "r3d_18": (tvv.r3d_18, VideoResNetTrunk),
    "mc3_18": (tvv.mc3_18, VideoResNetTrunk),
    "r2plus1d_18": (tvv.r2plus1d_18, VideoResNetTrunk),
    "swin3d_t": (tvv.swin3d_t, SwinTrunk),
    "s3d": (tvv.s3d, S3DTrunk),
    "mvit_v1_b": (tvv.mvit_v1_b, MViTTrunk),
}


def torchvision_scene(
    arch: str,
    num_classes: int,
    *,
    backbone_weights: str | None = None,
    feature_dim: int = 512,
    dropout: float = 0.5,
) -> SceneModel:
    """A torchvision video trunk (weights=None), optionally loaded from a local file in
    torchvision's format (its own head keys are ignored)."""
    make, trunk_cls = TORCHVISION_TRUNKS[arch]
    trunk = trunk_cls(make(weights=None))
    if backbone_weights is not None:
        load_backbone_weights(trunk, backbone_weights)
    return SceneModel(trunk, num_classes, feature_dim, dropout)


def small3d(
    num_classes: int,
    *,
    backbone_weights: str | None = None,
    width: int = 24,
    feature_dim: int = 512,
    dropout: float = 0.5,
) -> SceneModel:
    """The CPU demo scene model."""
    trunk = Small3D(width)
    if backbone_weights is not None:
        load_backbone_weights(trunk, backbone_weights)
    return SceneModel(trunk, num_classes, feature_dim, dropout)


r3d_18 = functools.partial(torchvision_scene, "r3d_18")
mc3_18 = functools.partial(torchvision_scene, "mc3_18")
r2plus1d_18 = functools.partial(torchvision_scene, "r2plus1d_18")
swin3d_t = functools.partial(torchvision_scene, "swin3d_t")
s3d = functools.partial(torchvision_scene, "s3d")
mvit_v1_b = functools.partial(torchvision_scene, "mvit_v1_b")
