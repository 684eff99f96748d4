"""3D CNN and video transformer trunks: clips [B,3,T,H,W] -> feature maps [B,D,T',H',W'] with `out_dim` = D.

torchvision's video models (r3d_18, mc3_18, r2plus1d_18, swin3d_t, s3d, mvit_v1_b) built with weights=None,
without their pooling and heads, so the trunk's state-dict keys are the torchvision model's minus its
classification head (a torchvision-format file loads straight in); `Small3D` is a tiny trunk for CPU
demos and tests. The I3D ResNet-50 is in `i3d_resnet`, the MobileNetV2 video trunks in `mobilenet`.
"""
from __future__ import annotations

from torch import nn
from torchvision.models import video as tvv

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


TORCHVISION_TRUNKS = {
    "r3d_18": (tvv.r3d_18, VideoResNetTrunk),
    "mc3_18": (tvv.mc3_18, VideoResNetTrunk),
    "r2plus1d_18": (tvv.r2plus1d_18, VideoResNetTrunk),
    "swin3d_t": (tvv.swin3d_t, SwinTrunk),
    "s3d": (tvv.s3d, S3DTrunk),
    "mvit_v1_b": (tvv.mvit_v1_b, MViTTrunk),
}
