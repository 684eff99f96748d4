"""Encoders every family uses, and loading their weights from local files.

- `loading`: strict loading of a weight file into an encoder (keys and shapes, one line when it does not fit).
- `video_trunks`: torchvision's video models as trunks (clips -> feature maps), `Small3D` for CPU demos.
- `i3d_resnet`: ResNet-50 I3D inflated from the 2D ResNet-50; `inflate_conv` / `inflate_bn` for any 2D net.
- `mobilenet`: torchvision's ImageNet MobileNetV2 (the verified local file) and its video trunks (TSM, I3D).
- `detection`: MobileNetV2 + feature pyramid with torchvision's detection heads (FCOS, Faster R-CNN, RetinaNet).
- `vit`: ViT_P and ViT_C ("Early Convolutions Help Transformers See Better") on timm's VisionTransformer.
- `optim`: weight-decay groups and the warm-up + cosine schedule every trainer of these encoders uses.
- `registry`: every backbone by name (`create_backbone`, below), `vislearn backbones list` (params, flops).
Imports: `vislearn.common` only (DESIGN.md): families build their heads on these trunks.
"""


def create_backbone(name: str, **kwargs):
    """The backbone `name` (`vislearn backbones list` names them all), built with `kwargs`; see
    `vislearn.backbones.registry` (imported here only when called, so `import vislearn.backbones` stays light)."""
    from .registry import create_backbone as create

    return create(name, **kwargs)
