"""The ResNet-50 I3D scene model: the I3D trunk (`vislearn.backbones.i3d_resnet`, which explains the
architecture, the inflation and the official checkpoint layout) under the scene stream's head.

`official=True` is the official code's `global_i3d`: layer4 map -> 1x1x1 conv 2048 -> 512 (linear, no
ReLU) -> global mean -> dropout -> linear, i.e. `SceneModel` with a linear projection (the conv becomes
`proj.0`, the official `fc` becomes `classifier.1`).
"""
from __future__ import annotations

from vislearn.backbones.i3d_resnet import I3D_TEMPORAL_KERNELS, build_i3d_trunk

from .scene import SceneModel


def i3d_r50(
    num_classes: int,
    *,
    backbone_weights: str | None = None,
    feature_dim: int = 512,
    dropout: float = 0.5,
    temporal_kernels=I3D_TEMPORAL_KERNELS,
    stem_temporal: int = 5,
    inflation: str = "mean",
    temporal_pool: bool = True,
    layer4_stride: int | None = None,
    official: bool = False,
) -> SceneModel:
    """ResNet-50 I3D scene model: layer4 map -> mean over T,H,W -> 2048 -> 512 -> classes.

    `official=True`: the official code's I3D (`global_i3d`): zero temporal padding, stem max pool without
    padding, layer4 stride 1 (unless `layer4_stride` says otherwise), linear 2048 -> 512 projection.
    """
    trunk = build_i3d_trunk(
        backbone_weights,
        temporal_kernels=tuple(tuple(k) for k in temporal_kernels),
        stem_temporal=stem_temporal,
        inflation=inflation,
        temporal_pool=temporal_pool,
        layer4_stride=layer4_stride if layer4_stride is not None else (1 if official else 2),
        temporal_padding="zeros" if official else "replicate",
        stem_pool_padding=0 if official else 1,
    )
    return SceneModel(trunk, num_classes, feature_dim, dropout, proj_relu=not official)

