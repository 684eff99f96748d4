"""MobileSAM's image encoder: TinyViT-5M (Wu et al., ECCV 2022) with SAM's neck, 1024 px -> 256 x 64 x 64.

The module tree and parameter names are MobileSAM's (`mobile_sam.modeling.TinyViT`), so the `image_encoder.*`
part of a `mobile_sam.pt` state dict loads with `load_state_dict(strict=True)` and no renaming. Written here
rather than assembled from `timm.models.tiny_vit`: timm names the conv of a conv-BN pair `conv` (MobileSAM: `c`),
puts each stage's downsampling at the start of the next stage (MobileSAM: `layers.i.downsample` at the end of
stage i), names the classifier `head.norm`/`head.fc` (MobileSAM: `norm_head`/`head`) and always downsamples by 2
(MobileSAM keeps the last merge at stride 1 so the output grid is 1/16 of the image, like SAM's ViT).

Differences from the reference, none of which change the numbers of a loaded checkpoint:
- any image size that is a multiple of 16 works (the reference reshapes to a fixed 64 x 64 grid, so only 1024 px);
  windows that do not tile a grid are zero-padded exactly as in the reference;
- the relative attention biases are gathered on every forward, never cached in eval mode (the reference caches
  them in `.eval()`, so weights loaded after `.eval()` run with stale biases until `.eval()` is called again);
- the ImageNet classifier (`norm_head`, `head`) is kept because `mobile_sam.pt` carries it, but it takes no part
  in `forward` and its parameters are frozen (`requires_grad=False`) so optimisers and DDP skip them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, trunc_normal_
from torch import nn

MOBILE_SAM_TINY_VIT = dict(
    embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7),
    merge_strides=(2, 2, 1),
)
SIZE_MULTIPLE = 16  # the stem and two merges halve the grid four times; SAM's prompt encoder assumes img_size // 16
HEAD_KEYS = ("norm_head.weight", "norm_head.bias", "head.weight", "head.bias")  # carried, never used
MARKER_KEY = "layers.0.blocks.0.conv1.c.weight"  # a key only a TinyViT image encoder has (SAM's ViT has none like it)


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm; names `c` and `bn` as in the reference checkpoint."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 bn_weight_init: float = 1.0):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.bn.track_running_stats:
            return self.bn(self.c(x))
        # eval: fold the BatchNorm into the conv (one pass over the activations instead of two; nothing cached)
        scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
        weight = self.c.weight * scale[:, None, None, None]
        bias = self.bn.bias - self.bn.running_mean * scale
        return F.conv2d(x, weight, bias, self.c.stride, self.c.padding, self.c.dilation, self.c.groups)


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 conv-BN with a GELU between: image -> 1/4 grid."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.seq = nn.Sequential(ConvBN(in_chans, dim // 2, 3, 2), nn.GELU(), ConvBN(dim // 2, dim, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual (1x1 expand, 3x3 depthwise, 1x1 project), GELU after the residual sum."""

    def __init__(self, dim: int, expand_ratio: float, drop_path: float):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1, self.act1 = ConvBN(dim, hidden), nn.GELU()
        self.conv2, self.act2 = ConvBN(hidden, hidden, 3, groups=hidden), nn.GELU()
        self.conv3 = ConvBN(hidden, dim, bn_weight_init=0.0)  # the block starts as the identity
        self.act3 = nn.GELU()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(x + self.drop_path(y))


class PatchMerging(nn.Module):
    """1x1 conv to the next width, 3x3 depthwise conv at `stride`, 1x1 conv (NCHW in and out)."""

    def __init__(self, dim: int, out_dim: int, stride: int):
        super().__init__()
        self.act = nn.GELU()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class Mlp(nn.Module):
    """Pre-norm MLP (the LayerNorm lives inside, as in the reference)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


def bias_index(window: int) -> torch.Tensor:
    """[N, N] (N = window^2): index of the learned bias for the offset (|dy|, |dx|) between two window cells,
    numbered |dy| * window + |dx| (the order in which the reference meets the offsets)."""
    d = (torch.arange(window)[:, None] - torch.arange(window)[None, :]).abs()
    return (d[:, None, :, None] * window + d[None, :, None, :]).reshape(window * window, window * window)


class Attention(nn.Module):
    """Pre-norm multi-head attention inside one window with a learned bias per head and per (|dy|, |dx|).

    qkv is laid out per head as [q | k | v] (MobileSAM/LeViT), not [all q | all k | all v] like timm's ViT.
    """

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self.register_buffer("attention_bias_idxs", bias_index(window), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # (windows, cells, channels)
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).transpose(1, 2).chunk(3, -1)
        # written out rather than F.scaled_dot_product_attention: on CPU its float-mask path is 1.3-2x slower here
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TinyViTBlock(nn.Module):
    """Window attention, a 3x3 depthwise conv-BN (the only mixing across windows), MLP. Works on [B, H, W, C]."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, drop_path: float,
                 local_conv_size: int = 3):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention within non-overlapping windows; the grid is zero-padded at the bottom/right to whole windows
        (padded cells take part as keys, as in the reference)."""
        b, h, w, c = x.shape
        s = self.window
        ph, pw = -h % s, -w % s
        if ph or pw:
            x = F.pad(x, (0, 0, 0, pw, 0, ph))
        nh, nw = (h + ph) // s, (w + pw) // s
        x = x.view(b, nh, s, nw, s, c).transpose(2, 3).reshape(b * nh * nw, s * s, c)
        x = self.attn(x)
        x = x.view(b, nh, nw, s, s, c).transpose(2, 3).reshape(b, h + ph, w + pw, c)
        return x[:, :h, :w] if ph or pw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.window_attention(x))
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NCHW views of NHWC memory
        return x + self.drop_path(self.mlp(x))


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks, then the merge to the next stage (NCHW)."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, drop_path: Sequence[float],
                 downsample: PatchMerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio, drop_path[i]) for i in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class BasicLayer(nn.Module):
    """Stages 1-3: TinyViT blocks on [B, H, W, C], then the merge to the next stage; NCHW in and out."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float,
                 drop_path: Sequence[float], local_conv_size: int, downsample: PatchMerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, num_heads, window, mlp_ratio, drop_path[i], local_conv_size)
                                    for i in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        x = x.permute(0, 3, 1, 2)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """MobileSAM's image encoder. `img_size` is the square input the SAM preprocessing pads to (the predictor
    reads `image_encoder.img_size`); the output is [B, out_chans, img_size/16, img_size/16]. Nothing in the
    weights depends on `img_size`, so a checkpoint trained at 1024 px loads at any size."""

    def __init__(self, img_size: int = 1024, in_chans: int = 3, embed_dims: Sequence[int] = (64, 128, 160, 320),
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (2, 4, 5, 10),
                 window_sizes: Sequence[int] = (7, 7, 14, 7), merge_strides: Sequence[int] = (2, 2, 1),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0, local_conv_size: int = 3,
                 out_chans: int = 256, num_classes: int = 1000, drop_path_rate: float = 0.0):
        super().__init__()
        if img_size <= 0 or img_size % SIZE_MULTIPLE:
            raise ValueError(f"img_size must be a positive multiple of {SIZE_MULTIPLE}, got {img_size}")
        if not len(embed_dims) == len(depths) == len(num_heads) == len(window_sizes) == len(merge_strides) + 1:
            raise ValueError("embed_dims, depths, num_heads and window_sizes need one entry per stage, "
                             "merge_strides one per stage but the last")
        if sum(s == 2 for s in merge_strides) != 2 or any(s not in (1, 2) for s in merge_strides):
            raise ValueError(f"merge_strides must hold two 2s and otherwise 1s (a 1/16 grid), got {merge_strides}")
        self.img_size, self.out_chans = img_size, out_chans
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        n = sum(depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # stochastic depth grows linearly
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            dpr = rates[sum(depths[:i]):sum(depths[:i + 1])]
            merge = PatchMerging(dim, embed_dims[i + 1], merge_strides[i]) if i + 1 < len(depths) else None
            if i == 0:
                self.layers.append(ConvLayer(dim, depth, mbconv_expand_ratio, dpr, merge))
            else:
                self.layers.append(BasicLayer(dim, depth, num_heads[i], window_sizes[i], mlp_ratio, dpr,
                                              local_conv_size, merge))
        # TinyViT's ImageNet classifier: in every MobileSAM checkpoint, unused here (see the module docstring)
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        for p in (*self.norm_head.parameters(), *self.head.parameters()):
            p.requires_grad_(False)
        self.neck = nn.Sequential(  # SAM's neck (PyTorch's default conv init, as in the reference)
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] normalised and padded images -> [B, out_chans, H/16, W/16] embeddings."""
        # channels-last memory throughout: the token layout of the attention stages is then a free view, and
        # PyTorch's CPU depthwise convolutions run several times faster on it
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


def _init_weights(m: nn.Module) -> None:
    """TinyViT's initialisation: truncated normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_tiny_vit_encoder(img_size: int = 1024, out_chans: int = 256) -> TinyViT:
    """MobileSAM's TinyViT-5M encoder (random init) for `img_size` px inputs (a multiple of 16)."""
    return TinyViT(img_size=img_size, out_chans=out_chans, **MOBILE_SAM_TINY_VIT)


def is_tiny_vit_state(state: dict, prefix: str = "image_encoder.") -> bool:
    """Whether a (SAM) state dict holds a TinyViT image encoder under `prefix` (MobileSAM's `mobile_sam.pt`)."""
    return prefix + MARKER_KEY in state


def tiny_vit_state_keys(prefix: str = "image_encoder.") -> set[str]:
    """The keys our encoder's state dict has (BatchNorm counters included), each with `prefix`."""
    with torch.device("meta"):
        model = build_tiny_vit_encoder()
    return {prefix + k for k in model.state_dict()}
