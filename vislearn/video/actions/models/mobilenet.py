"""Scene models on the MobileNetV2 video trunks of `vislearn.backbones.mobilenet` (TSM and I3D-style
inflation; that module explains both): trunk -> pooling (`SceneModel` head) -> 512 -> classes."""
from __future__ import annotations

import functools

from vislearn.backbones.mobilenet import MobileNetV2Video, mobilenet_v2_2d

from .scene import SceneModel


def mobilenet_v2_scene(
    num_classes: int,
    *,
    temporal: str = "tsm",
    pretrained: str | None = None,
    frozen_blocks: int = 0,
    shift_div: int | None = None,
    temporal_kernel: int | None = None,
    inflation: str | None = None,
    feature_dim: int = 512,
    dropout: float = 0.5,
    head: str = "mean",
    num_frames: int = 8,
    frame_dim: int = 128,
    output_stride: int = 32,
) -> SceneModel:
    """MobileNetV2 video trunk (`temporal`: "tsm" shifts channels in time, `shift_div`; "i3d" inflates the
    kxk kernels to `temporal_kernel` x k x k, `inflation`) -> pooling (`SceneModel` head) -> 512 -> classes.
    `output_stride` 16 (or 8) dilates the later blocks for a finer map (STRG's regions; the backbone module
    explains it). An option of the other kind of trunk is refused rather than ignored."""
    other = {"tsm": {"temporal_kernel": temporal_kernel, "inflation": inflation}, "i3d": {"shift_div": shift_div}}
    given = [k for k, v in other.get(temporal, {}).items() if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: not an option of the {temporal} MobileNetV2")
    trunk = MobileNetV2Video(mobilenet_v2_2d(pretrained), temporal, frozen_blocks, shift_div=shift_div or 8,
                             temporal_kernel=temporal_kernel or 3, inflation=inflation or "mean", output_stride=output_stride)
    return SceneModel(trunk, num_classes, feature_dim, dropout, head, num_frames, frame_dim)


tsm_mobilenet_v2 = functools.partial(mobilenet_v2_scene, temporal="tsm")
i3d_mobilenet_v2 = functools.partial(mobilenet_v2_scene, temporal="i3d")
