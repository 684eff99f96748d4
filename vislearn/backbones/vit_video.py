"""A 2D ViT (ViT_P / ViT_C, e.g. an MAE encoder) on every frame of a clip, as a video trunk: frames
[B,3,T,H,W] -> patch-token map [B,D,T,h,w] (the class token dropped), the contract of the scene models.

`frozen_blocks` = k freezes the stem, the class token, the position embedding and the first k blocks (all of
them and the final norm when k is the depth: a frozen encoder, MVP-style). As with `MobileNetV2Video`,
`frame_features` runs the frozen part (tokens, kept as [B,D,T,N,1] so a cache of them is one more 5D map) and
`temporal_features` the rest; `frozen_digest` keys a cache of the frozen part's output by its weights.
"""
from __future__ import annotations

import hashlib

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn


class ViTVideo(nn.Module):
    def __init__(self, vit: VisionTransformer, frozen_blocks: int = 0):
        super().__init__()
        depth = len(vit.blocks)
        if frozen_blocks < 0:
            frozen_blocks = depth
        if frozen_blocks > depth:
            raise ValueError(f"frozen_blocks must be in 0..{depth} (or -1: all), got {frozen_blocks}")
        self.vit, self.frozen_blocks, self.out_dim = vit, frozen_blocks, vit.embed_dim
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        for p in self.frozen_parameters():
            p.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        if self.frozen_blocks == 0:
            return []
        mods = [self.vit.patch_embed, *self.vit.blocks[: self.frozen_blocks]]
        return mods + ([self.vit.norm] if self.frozen_blocks == len(self.vit.blocks) else [])

    def frozen_parameters(self) -> list[nn.Parameter]:
        if self.frozen_blocks == 0:
            return []
        extra = [p for p in (self.vit.cls_token, self.vit.pos_embed) if p is not None]
        return [p for m in self.frozen_modules() for p in m.parameters()] + extra

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()  # a conv stem's BatchNorm statistics stay frozen
        return self

    @property
    def frame_feature_dim(self) -> int:
        return 3 if self.frozen_blocks == 0 else self.out_dim

    def frozen_digest(self) -> str:
        h = hashlib.sha256(f"vit frames, stem + blocks[:{self.frozen_blocks}]".encode())
        named = {f"{i}.{k}": v for i, m in enumerate(self.frozen_modules()) for k, v in m.state_dict().items()}
        named.update({"cls_token": self.vit.cls_token, "pos_embed": self.vit.pos_embed})
        for name, t in named.items():
            if t is None:
                continue
            t = t.detach().cpu().float().contiguous()
            h.update(f"{name}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    def _tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """[B,3,T,H,W] -> tokens [B*T, N, D] after the stem and position embedding."""
        b, c, t, hh, ww = frames.shape
        x = self.vit.patch_embed(frames.transpose(1, 2).reshape(b * t, c, hh, ww))
        return self.vit.norm_pre(self.vit._pos_embed(x))

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """The frozen part on each frame: [B,3,T,H,W] -> tokens [B,D,T,N,1] (the frames when nothing is frozen)."""
        if self.frozen_blocks == 0:
            return frames
        b, t = frames.shape[0], frames.shape[2]
        with torch.no_grad():
            x = self._tokens(frames)
            for block in self.vit.blocks[: self.frozen_blocks]:
                x = block(x)
        return x.view(b, t, x.shape[1], x.shape[2]).permute(0, 3, 1, 2).unsqueeze(-1)

    def temporal_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trainable rest: tokens [B,D,T,N,1] (or frames when nothing is frozen) -> map [B,D,T,h,w]."""
        if self.frozen_blocks == 0:
            b, t = x.shape[0], x.shape[2]
            x = self._tokens(x)
        else:
            b, t = x.shape[0], x.shape[2]
            x = x.squeeze(-1).permute(0, 2, 3, 1).reshape(b * t, x.shape[3], x.shape[1])
        for block in self.vit.blocks[self.frozen_blocks:]:
            x = block(x)
        x = self.vit.norm(x)[:, self.vit.num_prefix_tokens:]
        return x.view(b, t, *self.grid, x.shape[-1]).permute(0, 4, 1, 2, 3)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.temporal_features(self.frame_features(frames))
