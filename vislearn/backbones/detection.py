"""Detection networks on torchvision's ImageNet MobileNetV2 (the verified local file of `vislearn.common.weights`).

The body is `torchvision.models.mobilenet_v2().features` itself (child names "0".."18", so the
ImageNet file's `features.N...` tensors load by name), read at the ends of its stride-8, -16 and -32
stages (blocks 6, 13 and 18: 32, 96 and 1280 channels) by torchvision's `BackboneWithFPN`, which adds a
feature pyramid (and a max-pooled stride-64 level). SSv2-size hands and objects are 15-50 px in a
128x96 frame, so the stride-8 level matters; torchvision's own MobileNet detection backbones read
stride 16 and 32 only.

Heads (`HEADS`), all torchvision's, on that pyramid:
  frcnn      Faster R-CNN: RPN + RoIAlign box head (a 2-layer MLP of `box_head_dim` units)
  fcos       FCOS: anchor-free, one location per feature cell (`head_convs` convolutions per branch)
  retinanet  RetinaNet: 9 anchors per cell, focal loss
  frcnn_c4   Faster R-CNN on the stride-32 map alone, no pyramid (torchvision's detection tutorial)
Anchor sizes are in pixels of the network's input (the frame resized so its shorter side is
`min_size`); they suit boxes of 1/6 to 1/2 of the shorter side, the range of hands and objects in SSv2
frames.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

# block of `features` whose output a pyramid level reads -> level name; strides 8, 16, 32
PYRAMID_BLOCKS = {"6": "0", "13": "1", "18": "2"}
PYRAMID_IN_CHANNELS = [32, 96, 1280]
LEVELS = ["0", "1", "2", "pool"]  # strides 8, 16, 32, 64


def mobilenet_v2_body() -> nn.Sequential:
    """torchvision's MobileNetV2 `features` (random weights; `load_backbone_from_classifier` fills them)."""
    return mobilenet_v2(weights=None).features


def mobilenet_v2_fpn(channels: int) -> BackboneWithFPN:
    """MobileNetV2 + feature pyramid; `.body` holds the MobileNetV2 blocks under their own names."""
    return BackboneWithFPN(mobilenet_v2_body(), dict(PYRAMID_BLOCKS), PYRAMID_IN_CHANNELS, channels,
                           extra_blocks=LastLevelMaxPool())


class SingleMap(nn.Module):
    """The whole of `features` as one stride-32 map (torchvision's detection tutorial)."""

    def __init__(self):
        super().__init__()
        self.body = mobilenet_v2_body()
        self.out_channels = 1280

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return OrderedDict([("0", self.body(x))])


def _scaled(sizes: tuple[int, ...], min_size: int) -> tuple[int, ...]:
    """Anchor sizes given for a 192-px shorter side, scaled to `min_size`."""
    return tuple(max(4, round(s * min_size / 192)) for s in sizes)


def frcnn(spec, num_classes: int, common: dict) -> nn.Module:
    backbone = mobilenet_v2_fpn(spec.fpn_channels)
    sizes = _scaled((16, 32, 64, 128), spec.min_size)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))
    pool = MultiScaleRoIAlign(LEVELS[:3], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(spec.fpn_channels * 7 * 7, spec.box_head_dim)
    return FasterRCNN(backbone, None, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=head,
                      box_predictor=FastRCNNPredictor(spec.box_head_dim, num_classes), **frcnn_options(spec), **common)


def frcnn_c4(spec, num_classes: int, common: dict) -> nn.Module:
    backbone = SingleMap()
    anchors = AnchorGenerator((_scaled((16, 32, 64, 128), spec.min_size),), ((0.5, 1.0, 2.0),))
    pool = MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(backbone.out_channels * 7 * 7, spec.box_head_dim)
    return FasterRCNN(backbone, None, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=head,
                      box_predictor=FastRCNNPredictor(spec.box_head_dim, num_classes), **frcnn_options(spec), **common)


def fcos(spec, num_classes: int, common: dict) -> nn.Module:
    backbone = mobilenet_v2_fpn(spec.fpn_channels)
    # FCOS reads an anchor's size as its level's scale: a location of level k learns boxes whose
    # largest side distance is within [4, 8] x that size (the first level from 0, the last to infinity)
    sizes = _scaled((8, 16, 32, 64), spec.min_size)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * len(sizes))
    head = FCOSHead(backbone.out_channels, 1, num_classes, num_convs=spec.head_convs)
    return FCOS(backbone, num_classes, anchor_generator=anchors, head=head, score_thresh=spec.score_thresh,
                detections_per_img=spec.detections_per_img, topk_candidates=spec.proposals_test, **common)


def retinanet(spec, num_classes: int, common: dict) -> nn.Module:
    backbone = mobilenet_v2_fpn(spec.fpn_channels)
    base = _scaled((16, 32, 64, 128), spec.min_size)
    anchors = AnchorGenerator(tuple((s, round(s * 2 ** (1 / 3)), round(s * 2 ** (2 / 3))) for s in base),
                              ((0.5, 1.0, 2.0),) * len(base))
    return RetinaNet(backbone, num_classes, anchor_generator=anchors, score_thresh=spec.score_thresh,
                     detections_per_img=spec.detections_per_img, topk_candidates=spec.proposals_test, **common)


def frcnn_options(spec) -> dict:
    return dict(box_score_thresh=spec.score_thresh, box_detections_per_img=spec.detections_per_img,
                rpn_pre_nms_top_n_test=max(spec.proposals_test, 300), rpn_post_nms_top_n_test=spec.proposals_test,
                rpn_pre_nms_top_n_train=max(spec.proposals_train, 1000),
                rpn_post_nms_top_n_train=spec.proposals_train, box_batch_size_per_image=spec.roi_samples)


HEADS = {"fcos": fcos, "frcnn": frcnn, "retinanet": retinanet, "frcnn_c4": frcnn_c4}
