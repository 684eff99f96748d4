"""Scene models on the MobileNetV2 video trunks of `vislearn.backbones.mobilenet` (TSM and I3D-style
inflation; that module explains both): trunk -> pooling (`SceneModel` head) -> 512 -> classes."""
from __future__ import annotations

from vislearn.backbones.mobilenet import MobileNetV2Video, mobilenet_v2_2d

from .scene import SceneModel


def tsm_mobilenet_v2(
    num_classes: int,
    *,
    pretrained: str | None = None,
    frozen_blocks: int = 0,
    shift_div: int = 8,
    feature_dim: int = 512,
    dropout: float = 0.5,
    head: str = "mean",
    num_frames: int = 8,
    frame_dim: int = 128,
) -> SceneModel:
    """TSM MobileNetV2 scene model: shifted 2D trunk -> pooling (`SceneModel` head) -> 512 -> classes."""
    trunk = MobileNetV2Video(mobilenet_v2_2d(pretrained), "tsm", frozen_blocks, shift_div=shift_div)
    return SceneModel(trunk, num_classes, feature_dim, dropout, head, num_frames, frame_dim)


def i3d_mobilenet_v2(
    num_classes: int,
    *,
    pretrained: str | None = None,
    frozen_blocks: int = 0,
    temporal_kernel: int = 3,
    inflation: str = "mean",
    feature_dim: int = 512,
    dropout: float = 0.5,
    head: str = "mean",
    num_frames: int = 8,
    frame_dim: int = 128,
) -> SceneModel:
    """MobileNetV2 inflated to 3D (I3D-style): 3D trunk -> pooling (`SceneModel` head) -> 512 -> classes."""
    trunk = MobileNetV2Video(mobilenet_v2_2d(pretrained), "i3d", frozen_blocks, temporal_kernel=temporal_kernel,
                             inflation=inflation)
    return SceneModel(trunk, num_classes, feature_dim, dropout, head, num_frames, frame_dim)
