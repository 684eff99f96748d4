"""The official Something-Else models' parameter layouts, built here for the converter tests.

Layouts follow the public release's `code/model/model_lib.py` (VideoModelCoord, VideoModelCoordLatent,
VideoModelCoordLatentNL, VideoGlobalModel), `code/model/nonlocal_helper.py` and `code/model/resnet3d_xl.py`
(ResNet-50 I3D, arc 2): the same module names, nesting and shapes, so their `state_dict()` has the keys an
official checkpoint has. The forward passes are written here from what those models compute (box inputs
in the official [b, frames, boxes] layout, boxes-major flattening, the spatial message (sum - self)/(N-1),
zero temporal padding, stem max pool without padding, layer4 stride 1, 1x1x1 conv before the pooling),
independently of `actions.models`, so equal logits test the conversion rather than restate it.
"""
from __future__ import annotations

import torch
from torch import nn


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden, bias=False), nn.BatchNorm1d(d_hidden), nn.ReLU(),
                         nn.Linear(d_hidden, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU())


class Nonlocal(nn.Module):
    """Softmax non-local block over box tracks with an affine-free one-group norm (no parameters)."""

    def __init__(self, dim: int, dim_inner: int):
        super().__init__()
        self.dim_inner = dim_inner
        self.conv_theta, self.conv_phi, self.conv_g = (nn.Conv1d(dim, dim_inner, 1) for _ in range(3))
        self.conv_out = nn.Conv1d(dim_inner, dim, 1)
        self.ln = nn.GroupNorm(1, dim, affine=False)

    def forward(self, x):  # [b, C, boxes]
        att = torch.einsum("nct,ncp->ntp", self.conv_theta(x), self.conv_phi(x)) * self.dim_inner ** -0.5
        y = torch.einsum("ntg,ncg->nct", att.softmax(2), self.conv_g(x))
        return x + self.ln(self.conv_out(y))


class OfficialSTIN(nn.Module):
    """coord (STIN), coord_latent (+OIE), coord_latent_nl (+OIE+NL)."""

    def __init__(self, variant: str, num_classes: int = 174, dim: int = 256, frames: int = 8, boxes: int = 4):
        super().__init__()
        self.oie, self.nl = variant != "stin", variant == "stin_oie_nl"
        self.C, self.T, self.N = dim, frames, boxes
        if self.oie:
            self.category_embed_layer = nn.Embedding(3, dim // 2, padding_idx=0)
        self.coord_to_feature = _mlp(4, dim // 2, dim)
        if self.oie:
            self.coord_category_fusion = nn.Sequential(nn.Linear(dim + dim // 2, dim, bias=False), nn.BatchNorm1d(dim),
                                                       nn.ReLU())
        self.spatial_node_fusion = _mlp(2 * dim, dim, dim)
        if self.nl:
            self.nonlocal_fusion = nn.ModuleList(
                nn.Sequential(Nonlocal(dim, dim // 2), nn.Conv1d(dim, dim, 1, bias=False), nn.BatchNorm1d(dim), nn.ReLU())
                for _ in range(3))
        self.box_feature_fusion = _mlp(frames * dim, dim, dim)
        self.classifier = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 512), nn.ReLU(),
                                        nn.Linear(512, num_classes))

    def forward(self, box_categories, box_input):  # [b, T, N], [b, T, N, 4]
        b, C, T, N = box_input.shape[0], self.C, self.T, self.N
        bf = self.coord_to_feature(box_input.transpose(2, 1).reshape(b * N * T, 4))
        if self.oie:
            emb = self.category_embed_layer(box_categories.long().transpose(2, 1).reshape(b * N * T))
            bf = self.coord_category_fusion(torch.cat([bf, emb], 1))
        bf = bf.view(b, N, T, C)
        message = (bf.sum(1, keepdim=True) - bf) / (N - 1)
        bf = self.spatial_node_fusion(torch.cat([bf, message], 3).view(b * N * T, 2 * C)).view(b, N, T * C)
        h = self.box_feature_fusion(bf.view(b * N, T * C)).view(b, N, C)
        if self.nl:
            h = h.permute(0, 2, 1)
            for layer in self.nonlocal_fusion:
                h = layer(h)
            return self.classifier(h.mean(2))
        return self.classifier(h.mean(1))


def _conv_bn(c_in, c_out, kernel, stride, pad):
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride, pad, bias=False), nn.BatchNorm3d(c_out))


class Bottleneck(nn.Module):
    def __init__(self, c_in, c_out, stride, inner, temporal):
        super().__init__()
        self.conv1 = _conv_bn(c_in, inner, (1 + 2 * temporal, 1, 1), 1, (temporal, 0, 0))
        self.conv2 = _conv_bn(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.conv3 = _conv_bn(inner, c_out, 1, 1, 0)
        self.project = c_in != c_out or stride != 1
        if self.project:
            self.shortcut = _conv_bn(c_in, c_out, 1, (1, stride, stride), 0)

    def forward(self, x):
        out = self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        return torch.relu(out + (self.shortcut(x) if self.project else x))


ARC2 = ([1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0])  # use_temp_convs of the four stages


class OfficialI3D(nn.Module):
    """resnet3d_xl's ResNet-50 I3D (arc 2) with its 2048-way `classifier`; forward -> the layer4 map."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool1 = nn.MaxPool3d((1, 3, 3), (1, 2, 2), 0)
        self.maxpool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1), 0)
        c_in = 64
        for i, (temporal, c_out, stride) in enumerate(zip(ARC2, (256, 512, 1024, 2048), (1, 2, 2, 1)), start=1):
            blocks = []
            for j, t in enumerate(temporal):
                blocks.append(Bottleneck(c_in, c_out, stride if j == 0 else 1, c_out // 4, t))
                c_in = c_out
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.classifier = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.maxpool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.maxpool2(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))


class OfficialGlobalI3D(nn.Module):
    """global_i3d (VideoGlobalModel): I3D map -> 1x1x1 conv 2048->512 -> global mean -> dropout -> fc."""

    def __init__(self, num_classes: int = 174):
        super().__init__()
        self.i3D = OfficialI3D(num_classes)
        self.conv = nn.Conv3d(2048, 512, 1)
        self.fc = nn.Linear(512, num_classes)
        self.dropout = nn.Dropout(0.3)

    def forward(self, frames):
        return self.fc(self.dropout(self.conv(self.i3D(frames)).mean((2, 3, 4))))


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights, BatchNorm statistics and affine parameters of a visible scale, and eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()
