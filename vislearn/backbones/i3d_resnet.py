"""ResNet-50 I3D trunk, inflated from torchvision's 2D ResNet-50 (`inflate_conv`, `inflate_bn`: any 2D conv network).

Architecture (the Non-local / I3D ResNet-50 recipe that the official Something-Else code used,
`resnet3d_xl.py` arc 2): stem conv 5x7x7 (time stride 1), max pool 1x3x3, a 2x1x1 temporal max
pool after layer1 (T -> T/2), and 3x1x1 temporal kernels in the first (1x1) conv of these
residual blocks: layer1 all, layer2/layer3 every other block starting with the first, layer4
the middle one. All other convs are 1xkxk. Set `temporal_kernels=C2D_TEMPORAL_KERNELS` and
`stem_temporal=1` for a C2D baseline.

Inflation: *mean* inflation (each of the k temporal taps gets the 2D kernel / k, the I3D and
Non-local recipe) with *replicate* temporal padding. Replicate padding is what makes a static
clip (all frames identical) give exactly the 2D network's activations at every frame,
including the first and last ones, where zero padding would dim them by (k-1)/(2k).
`inflation="center"` (2D kernel on the centre tap, zeros elsewhere) is offered too; it has the
same static-clip property.

Module names mirror torchvision's resnet50 (conv1, bn1, layer1.0.conv1, ...), so a 2D ImageNet
state dict in torchvision format and a 3D checkpoint of this trunk both load by name; which one
a file is, is told by the rank of conv1.weight.

Spatial stride: torchvision's (layer4 stride 2, 7x7 at 224). The official code used stride 1 in
layer4 (14x14 at 224, for RoIAlign); `layer4_stride=1` gives that.

Pooling: the scene head averages the [B,2048,T,H,W] map over T, H and W per channel (the
official code reshaped the map so that channels and time were mixed; not reproduced).

Official checkpoints (`official=True`, `official_i3d_state`): the official `resnet3d_xl.py` ResNet-50
I3D (arc 2) has this trunk's layers and kernels under other names: each conv with its BatchNorm is a
`Sequential(conv, bn)` (`layerI.J.convK.0` / `.1` here `layerI.J.convK` / `bnK`), the projection
shortcut is `shortcut` (here `downsample`), and the 2048-way Kinetics head is `fc` (Kinetics file) or
`classifier` (unused in the Something-Else models). Its behaviour differs in three places, which
`official=True` reproduces: temporal padding with zeros (here replicate), the stem max pool without
padding (here torchvision's padding 1), layer4 stride 1. Its `global_i3d` model then takes the layer4
map -> 1x1x1 conv 2048 -> 512 -> global mean -> dropout -> linear, i.e. `SceneModel` with a linear
(no ReLU) projection: the conv becomes `proj.0`, `fc` becomes `classifier.1`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from vislearn.common.checkpoint import read_state_dict

from .loading import load_state_checked

I3D_TEMPORAL_KERNELS = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
C2D_TEMPORAL_KERNELS = ((1,) * 3, (1,) * 4, (1,) * 6, (1,) * 3)


class Conv3dReplicateT(nn.Conv3d):
    """Conv3d whose temporal padding replicates the edge frames (spatial padding stays zero).

    Same parameters and state-dict keys as nn.Conv3d.
    """

    def __init__(self, *args, temporal_pad: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.temporal_pad = temporal_pad

    def forward(self, x):
        p = self.temporal_pad
        if p:
            x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")
        return super().forward(x)


TEMPORAL_PADDINGS = ("replicate", "zeros")


def inflate_conv(conv: nn.Conv2d, kt: int, inflation: str = "mean", temporal_padding: str = "replicate") -> nn.Conv3d:
    """A 2D conv as a kt x kh x kw 3D conv (time stride 1, 'same' temporal extent); the temporal padding
    replicates the edge frames, or is zeros (`temporal_padding="zeros"`, the official I3D)."""
    if kt % 2 != 1:
        raise ValueError(f"temporal kernel must be odd, got {kt}")
    if temporal_padding not in TEMPORAL_PADDINGS:
        raise ValueError(f"temporal_padding must be one of {TEMPORAL_PADDINGS}, got {temporal_padding!r}")
    zeros = temporal_padding == "zeros"
    conv3d = Conv3dReplicateT(
        conv.in_channels,
        conv.out_channels,
        (kt, *conv.kernel_size),
        stride=(1, *conv.stride),
        padding=(kt // 2 if zeros else 0, *conv.padding),
        dilation=(1, *conv.dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
        temporal_pad=0 if zeros else kt // 2,
    )
    w2d = conv.weight.detach()
    with torch.no_grad():
        if inflation == "mean":
            conv3d.weight.copy_(w2d.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt)
        elif inflation == "center":
            conv3d.weight.zero_()
            conv3d.weight[:, :, kt // 2] = w2d
        else:
            raise ValueError(f"inflation must be 'mean' or 'center', got {inflation!r}")
        if conv.bias is not None:
            conv3d.bias.copy_(conv.bias.detach())
    return conv3d


def inflate_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    bn3d = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    bn3d.load_state_dict(bn.state_dict())
    return bn3d


class I3DResNet50(nn.Module):
    """The inflated trunk: frames [B,3,T,H,W] -> layer4 map [B,2048,T/2,H/32,W/32]."""

    out_dim = 2048

    def __init__(
        self,
        net2d: nn.Module | None = None,
        temporal_kernels=I3D_TEMPORAL_KERNELS,
        stem_temporal: int = 5,
        inflation: str = "mean",
        temporal_pool: bool = True,
        layer4_stride: int = 2,
        temporal_padding: str = "replicate",
        stem_pool_padding: int = 1,
    ):
        super().__init__()
        net2d = resnet50(weights=None) if net2d is None else net2d
        if [len(k) for k in temporal_kernels] != [len(getattr(net2d, f"layer{i}")) for i in range(1, 5)]:
            raise ValueError(f"temporal_kernels must give one kernel per block (3,4,6,3), got {temporal_kernels}")
        self.conv1 = inflate_conv(net2d.conv1, stem_temporal, inflation, temporal_padding)
        self.bn1 = inflate_bn(net2d.bn1)
        self.relu = nn.ReLU(inplace=True)
        mp = net2d.maxpool
        self.maxpool = nn.MaxPool3d((1, mp.kernel_size, mp.kernel_size), (1, mp.stride, mp.stride),
                                    (0, stem_pool_padding, stem_pool_padding))
        self.pool_t = nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if temporal_pool else nn.Identity()
        for i, kernels in enumerate(temporal_kernels, start=1):
            layer = getattr(net2d, f"layer{i}")
            for block, kt in zip(layer, kernels):
                _inflate_bottleneck(block, kt, inflation, temporal_padding)
            setattr(self, f"layer{i}", layer)
        if layer4_stride != 2:
            first = self.layer4[0]
            first.conv2.stride = (1, layer4_stride, layer4_stride)
            first.downsample[0].stride = (1, layer4_stride, layer4_stride)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool_t(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))


def _inflate_bottleneck(block: nn.Module, kt: int, inflation: str, temporal_padding: str = "replicate") -> None:
    """Swap a torchvision Bottleneck's 2D layers for 3D ones in place (its forward is
    dimension-agnostic)."""
    block.conv1 = inflate_conv(block.conv1, kt, inflation, temporal_padding)
    block.conv2 = inflate_conv(block.conv2, 1, inflation)
    block.conv3 = inflate_conv(block.conv3, 1, inflation)
    block.bn1, block.bn2, block.bn3 = inflate_bn(block.bn1), inflate_bn(block.bn2), inflate_bn(block.bn3)
    if block.downsample is not None:
        conv, bn = block.downsample
        block.downsample = nn.Sequential(inflate_conv(conv, 1, inflation), inflate_bn(bn))


_OFFICIAL_NAMES = ((".conv1.0.", ".conv1."), (".conv1.1.", ".bn1."), (".conv2.0.", ".conv2."), (".conv2.1.", ".bn2."),
                   (".conv3.0.", ".conv3."), (".conv3.1.", ".bn3."), (".shortcut.", ".downsample."))
OFFICIAL_HEADS = ("fc.", "classifier.")  # the Kinetics head (`fc` in kinetics-res50.pth, `classifier` in the model)


def is_official_i3d_state(state: dict) -> bool:
    """Whether a state dict has the official `resnet3d_xl.py` layout (optionally under `i3D.`)."""
    return any(k.removeprefix("i3D.").startswith("layer1.0.conv1.0.") for k in state)


def official_i3d_state(state: dict) -> tuple[dict, dict]:
    """An official ResNet-50 I3D state dict (`resnet3d_xl.py`; `module.` already removed) under this
    trunk's names, and the official tensors that have no place in it (the Kinetics / unused heads)."""
    trunk, rest = {}, {}
    for k, v in state.items():
        if k.startswith(OFFICIAL_HEADS):
            rest[k] = v
            continue
        if k.startswith("layer"):
            for old, new in _OFFICIAL_NAMES:
                k = k.replace(old, new, 1) if old in k else k
        trunk[k] = v
    return trunk, rest


def build_i3d_trunk(backbone_weights: str | os.PathLike | None = None, **kwargs) -> I3DResNet50:
    """The I3D trunk, from random 2D weights, a 2D ResNet-50 state dict file (inflated), a 3D
    checkpoint file of this trunk (loaded as is), or an official `resnet3d_xl.py` I3D file such as
    its Kinetics `kinetics-res50.pth` (renamed, `official_i3d_state`; its head is not used)."""
    if backbone_weights is None:
        return I3DResNet50(**kwargs)
    state = read_state_dict(backbone_weights)
    source = os.fspath(backbone_weights)
    if is_official_i3d_state(state):
        if any(k.startswith("i3D.") for k in state):  # a whole official model: its I3D part
            state = {k.removeprefix("i3D."): v for k, v in state.items() if k.startswith("i3D.")}
        state = official_i3d_state(state)[0]
    conv1 = state.get("conv1.weight", state.get("backbone.conv1.weight"))
    if conv1 is not None and conv1.dim() == 4:  # 2D ImageNet ResNet-50
        net2d = resnet50(weights=None)
        load_state_checked(net2d, state, source, ignore_prefixes=("fc.",))
        return I3DResNet50(net2d, **kwargs)
    trunk = I3DResNet50(**kwargs)
    load_state_checked(trunk, state, source, ignore_prefixes=())
    return trunk
