"""Scene (pixel) models: a video trunk -> global average pool -> 512-d feature -> classifier.

The trunks are encoders shared with other families (`vislearn.backbones`: torchvision's video models
built with weights=None, `Small3D` for CPU demos, the I3D ResNet-50 and the MobileNetV2 video trunks);
pretrained weights come only from local files (`vislearn.backbones.loading.load_backbone_weights`).
A trunk maps frames [B,3,T,H,W] to a feature map [B,D,T',H',W'] and has `out_dim` = D.
Pooling is a plain mean over (T',H',W'), i.e. adaptive: any clip length and size works
(torchvision's s3d has a fixed AvgPool3d((2,7,7)) that fails on 8-frame clips; it is not used).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import load_encoder_checkpoint
from vislearn.backbones.loading import load_backbone_weights
from vislearn.backbones.vit_video import ViTVideo
from vislearn.backbones.video_trunks import TORCHVISION_TRUNKS, Small3D


# ----------------------------------------------------------------------------- model
def trunk_map(backbone: nn.Module, batch: dict) -> torch.Tensor:
    """The trunk's feature map of a batch: from `frames` [B,3,T,H,W], or from `frame_features` (the
    output of the trunk's frozen per-frame part, read from `video.actions.feature_cache`) when the batch has
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


def vit_scene(
    num_classes: int,
    *,
    backbone: str = "vit_p_tiny",
    img_size: int = 64,
    encoder_checkpoint: str | None = None,
    frozen_blocks: int = 0,
    feature_dim: int = 512,
    dropout: float = 0.5,
    head: str = "mean",
    num_frames: int = 8,
    frame_dim: int = 128,
) -> SceneModel:
    """A 2D ViT on every frame (`vislearn.backbones.vit_video.ViTVideo`), e.g. the MAE encoder of
    `vislearn pretrain mae` (`encoder_checkpoint`: its RUN/encoder.pth, whose backbone must be `backbone`),
    frozen up to `frozen_blocks` (-1: all, the MVP way) -> pooling (`SceneModel` head) -> 512 -> classes.
    `img_size` is the frames' input size (a checkpoint's position embedding is resampled to it)."""
    if encoder_checkpoint:
        vit, info = load_encoder_checkpoint(encoder_checkpoint, num_classes=0, img_size=img_size)
        if info.backbone != backbone:
            raise ValueError(f"{encoder_checkpoint}: an encoder of {info.backbone}, the config says {backbone}")
    else:
        vit = create_backbone(backbone, num_classes=0, img_size=img_size)
    return SceneModel(ViTVideo(vit, frozen_blocks), num_classes, feature_dim, dropout, head, num_frames, frame_dim)
