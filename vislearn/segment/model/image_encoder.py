"""SAM's image encoder: timm's `VisionTransformerSAM` (the ViTDet-style ViT: 14x14 window attention with decomposed
relative positions, a few global blocks, and a conv neck to 256 channels) with the official parameter names.

timm implements exactly the official architecture; only its MLP is named `fc1`/`fc2` where the official one is
`lin1`/`lin2`. `SamMLP` carries the official names, so the state dict of `SamImageEncoder` is the official
`image_encoder.*` state dict, key for key: an official checkpoint loads with `load_state_dict(strict=True)` and ours
load into the official package. ViT_C's conv stem (`vislearn.backbones.vit.ConvStem`) plugs in as timm's
`embed_layer`, so "Early Convolutions" is an option of SAM too (its keys are `patch_embed.backbone.*`/`proj`).
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import Format
from timm.models.vision_transformer_sam import VisionTransformerSAM
from torch import nn

from vislearn.backbones.vit import ConvStem


class SamMLP(nn.Module):
    """The transformer blocks' MLP with the official names (`lin1`, `act`, `lin2`), called as timm's `Mlp`."""

    def __init__(self, in_features: int, hidden_features: int, act_layer=nn.GELU, drop: float = 0.0, **_):
        super().__init__()
        self.lin1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.lin2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class SamImageEncoder(VisionTransformerSAM):
    """Image [B,3,S,S] (normalised, padded to `img_size`) -> embedding [B, out_chans, S/16, S/16]."""

    def __init__(self, img_size: int = 1024, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, window_size: int = 14,
                 global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11), out_chans: int = 256,
                 stem_channels: tuple[int, ...] | None = None, stem_strides: tuple[int, ...] | None = None,
                 drop_path_rate: float = 0.0):
        embed_layer = None
        if stem_channels:
            embed_layer = partial(ConvStem, tuple(stem_channels), tuple(stem_strides), output_fmt=Format.NHWC,
                                  strict_img_size=False)
        super().__init__(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, use_rel_pos=True,
                         window_size=window_size, global_attn_indexes=tuple(global_attn_indexes),
                         neck_chans=out_chans, num_classes=0, global_pool="", drop_path_rate=drop_path_rate,
                         norm_layer=partial(nn.LayerNorm, eps=1e-6), mlp_layer=SamMLP,
                         **({"embed_layer": embed_layer} if embed_layer else {}))
        self.img_size = img_size
        self.out_chans = out_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
