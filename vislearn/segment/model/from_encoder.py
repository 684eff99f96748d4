"""A SAM whose image encoder starts from a pre-trained vislearn encoder (the paper: "an MAE pre-trained ViT").

The encoder checkpoint is the contract between families (`vislearn.backbones.encoders`: what `vislearn pretrain
mae` writes as RUN/encoder.pth): a timm `VisionTransformer`, ViT_P (patchify) or ViT_C (conv stem). The SAM gets
the same width, depth, heads, MLP ratio, patch size and stem; it copies the stem (with its BatchNorm statistics),
every block (timm's `mlp.fc1`/`fc2` are SAM's `mlp.lin1`/`lin2`), and the position embedding without its class
token, resampled (bicubic, as timm resamples) from the encoder's grid to SAM's and stored NHWC. What the encoder
does not have stays freshly initialised: the relative position tables of the windowed / global attention
(zeros, as in the official initialisation), the neck, the prompt encoder and the mask decoder. The encoder's final
norm and head are not used (SAM's neck takes the last block's tokens). Pixel normalisation is the encoder's.
"""
from __future__ import annotations

import os

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.errors import UserError

from .build import SamArch, build_sam, global_blocks
from .sam import Sam


def _stem(patch_embed: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The conv stem's channels and strides ((), () for a patchify stem)."""
    backbone = getattr(patch_embed, "backbone", None)
    if backbone is None:
        return (), ()
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    return tuple(c.out_channels for c in convs), tuple(int(c.stride[0]) for c in convs)


def arch_from_encoder(vit: nn.Module, img_size: int, window_size: int, name: str,
                      mean: tuple[float, ...], std: tuple[float, ...]) -> SamArch:
    """The SamArch with the encoder's transformer and stem at `img_size`."""
    blocks = list(vit.blocks)
    width = int(vit.embed_dim)
    stem_channels, stem_strides = _stem(vit.patch_embed)
    patch = int(vit.patch_embed.feat_ratio()) if stem_channels else int(vit.patch_embed.patch_size[0])
    if img_size % patch:
        raise UserError(f"img_size {img_size}: not a multiple of the encoder's patch size {patch}")
    return SamArch(name, img_size=img_size, width=width, depth=len(blocks), heads=int(blocks[0].attn.num_heads),
                   mlp_ratio=blocks[0].mlp.fc1.out_features / width, window_size=window_size,
                   global_attn_indexes=global_blocks(len(blocks)), stem_channels=stem_channels,
                   stem_strides=stem_strides, patch_size=patch,
                   pixel_mean=tuple(255.0 * m for m in mean), pixel_std=tuple(255.0 * s for s in std))


def encoder_state_for_sam(vit_state: dict[str, torch.Tensor], sam_grid: int) -> dict[str, torch.Tensor]:
    """The encoder's timm state dict under SAM's `image_encoder.*` names (only what SAM has)."""
    out = {}
    for key, value in vit_state.items():
        if key.startswith("patch_embed."):
            out[key] = value
        elif key.startswith("blocks."):
            out[key.replace(".mlp.fc1.", ".mlp.lin1.").replace(".mlp.fc2.", ".mlp.lin2.")] = value
    pos = vit_state["pos_embed"]  # [1, 1 + N, D]: class token first
    n = pos.shape[1] - 1
    old = int(round(n ** 0.5))
    if old * old != n:
        raise UserError(f"the encoder's position embedding has {n} patch tokens, not a square grid")
    grid = pos[:, 1:]
    if old != sam_grid:
        grid = resample_abs_pos_embed(grid, new_size=[sam_grid, sam_grid], old_size=[old, old], num_prefix_tokens=0,
                                      verbose=False)
    out["pos_embed"] = grid.reshape(1, sam_grid, sam_grid, -1)
    return {f"image_encoder.{k}": v for k, v in out.items()}


def sam_from_encoder(encoder_path: str | os.PathLike, img_size: int = 256, window_size: int = 8,
                     seed: int | None = None) -> tuple[Sam, SamArch]:
    """(SAM, its size) with the image encoder from `encoder_path` and everything else fresh (seeded with `seed`
    when given)."""
    from vislearn.backbones.encoders import load_encoder_checkpoint  # noqa: PLC0415

    source = os.fspath(encoder_path)
    ckpt = read_torch_file(source, "encoder checkpoint")
    backbone = ckpt.get("backbone") if isinstance(ckpt, dict) else None
    if not isinstance(backbone, str) or not backbone.startswith("vit_"):
        what = f"its backbone is {backbone!r}" if isinstance(backbone, str) else "no 'backbone' entry"
        raise UserError(f"{source}: not a ViT encoder checkpoint ({what}); SAM needs a ViT_P / ViT_C encoder as "
                        "`vislearn pretrain mae` writes in RUN/encoder.pth")
    vit, info = load_encoder_checkpoint(source, num_classes=0)
    if not hasattr(vit, "blocks") or getattr(vit, "pos_embed", None) is None:
        raise UserError(f"{source}: the encoder {backbone!r} is not a ViT with a learned position embedding")
    arch = arch_from_encoder(vit, img_size, window_size, f"{backbone}_sam{img_size}", info.mean, info.std)
    if seed is not None:
        torch.manual_seed(seed)
    model = build_sam(arch)
    state = encoder_state_for_sam(vit.state_dict(), arch.embedding_size)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise UserError(f"{source}: encoder weights do not fit the SAM built from it: {', '.join(wrong[:3])}")
    model.load_state_dict(state, strict=False)
    return model, arch
