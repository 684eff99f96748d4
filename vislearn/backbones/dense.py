"""2D CNN encoders read at several strides, for pre-training methods that need feature maps (ReSim's region
similarity on C3/C4) and for the detectors that reuse them.

`MultiScaleEncoder` holds `body` (torchvision's own network, read at the ends of its stride-8, -16 and -32 stages
by torchvision's `IntermediateLayerGetter`, so its tensors keep torchvision's names) and, with `fpn_channels`,
`fpn` (torchvision's `FeaturePyramidNetwork` with a max-pooled extra level). The module and key names are those of
the detector's backbone (`torchvision...BackboneWithFPN`, `vislearn.backbones.detection`): `body.N...`,
`fpn.inner_blocks...`, so a pre-trained encoder's body and pyramid load into a detector by name.

- `forward(x)` -> [B, D]: the global average of the last (stride-32) body map: what a linear probe, MoCo's global
  head and `vislearn pretrain probe` read.
- `maps(x)` -> {"c3", "c4", "c5"}: the stride-8/16/32 maps (through the pyramid when there is one).

Builders (`BACKBONES` in `registry`): `mobilenet_v2_ms` (MobileNetV2 `features`, blocks 6, 13, 18: 32, 96, 1280
channels, as the detector reads it), `resnet18_ms` and `resnet50_ms` (layer2-4). All take `weights=` (a state dict
or file, loaded strictly), `fpn_channels=` (0: none) and `num_classes=0` (accepted for the probe's calling
convention; there is no classifier). Nothing is downloaded.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from vislearn.common.checkpoint import read_state_dict
from vislearn.common.errors import UserError

from .loading import load_state_checked

LEVELS = ("c3", "c4", "c5")  # strides 8, 16, 32
STRIDES = {"c3": 8, "c4": 16, "c5": 32}


class MultiScaleEncoder(nn.Module):
    def __init__(self, network: nn.Module, return_layers: dict[str, str], in_channels: list[int],
                 fpn_channels: int = 0):
        super().__init__()
        self.body = IntermediateLayerGetter(network, return_layers)
        self.in_channels = list(in_channels)
        self.fpn = (FeaturePyramidNetwork(self.in_channels, fpn_channels, extra_blocks=LastLevelMaxPool())
                    if fpn_channels else None)
        self.map_channels = {lv: fpn_channels or c for lv, c in zip(LEVELS, self.in_channels)}
        self.num_features = self.in_channels[-1]

    def body_maps(self, x: torch.Tensor) -> OrderedDict:
        return self.body(x)  # names "0", "1", "2": strides 8, 16, 32

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"pooled": [B,D], "c3", "c4", "c5": maps} from one pass of the body."""
        feats = self.body_maps(x)
        pooled = feats["2"].mean(dim=(2, 3))
        if self.fpn is not None:
            feats = self.fpn(feats)
        return {"pooled": pooled, **{lv: feats[str(i)] for i, lv in enumerate(LEVELS)}}

    def maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {lv: v for lv, v in self.features(x).items() if lv in LEVELS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body_maps(x)["2"].mean(dim=(2, 3))


def _finish(model: MultiScaleEncoder, weights, num_classes: int) -> MultiScaleEncoder:
    if num_classes:
        raise UserError(f"num_classes={num_classes}: a multi-scale encoder has no classifier (use 0)")
    if weights is not None:
        state = weights if isinstance(weights, dict) else read_state_dict(weights)
        load_state_checked(model, state, "weights" if isinstance(weights, dict) else str(weights), ())
    return model


def mobilenet_v2_ms(weights=None, fpn_channels: int = 0, num_classes: int = 0, img_size: int | None = None
                    ) -> MultiScaleEncoder:
    """torchvision's MobileNetV2 `features` at blocks 6, 13, 18 (the detector's pyramid inputs)."""
    net = mobilenet_v2(weights=None).features
    return _finish(MultiScaleEncoder(net, {"6": "0", "13": "1", "18": "2"}, [32, 96, 1280], fpn_channels),
                   weights, num_classes)


def _resnet(make, channels: list[int], weights, fpn_channels: int, num_classes: int) -> MultiScaleEncoder:
    net = make(weights=None)
    return _finish(MultiScaleEncoder(net, {"layer2": "0", "layer3": "1", "layer4": "2"}, channels, fpn_channels),
                   weights, num_classes)


def resnet18_ms(weights=None, fpn_channels: int = 0, num_classes: int = 0, img_size: int | None = None
                ) -> MultiScaleEncoder:
    """torchvision's ResNet-18 read after layer2, layer3, layer4 (128, 256, 512 channels)."""
    return _resnet(resnet18, [128, 256, 512], weights, fpn_channels, num_classes)


def resnet50_ms(weights=None, fpn_channels: int = 0, num_classes: int = 0, img_size: int | None = None
                ) -> MultiScaleEncoder:
    """torchvision's ResNet-50 read after layer2, layer3, layer4 (512, 1024, 2048 channels): ReSim's backbone."""
    return _resnet(resnet50, [512, 1024, 2048], weights, fpn_channels, num_classes)


MULTISCALE = {"mobilenet_v2_ms": mobilenet_v2_ms, "resnet18_ms": resnet18_ms, "resnet50_ms": resnet50_ms}
