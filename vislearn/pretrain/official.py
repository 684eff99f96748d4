"""The MAE release's pre-training checkpoints (facebookresearch/mae `models_mae.py`: `mae_vit_base_patch16`,
`mae_vit_large_patch16`, `mae_vit_huge_patch14`) as a `MaskedAutoencoder`.

Their files hold `{"model": state}` with the encoder under timm's names at the top (`cls_token`, `pos_embed`,
`patch_embed.proj`, `blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`) and the decoder beside
it (`decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks.{i}...`, `decoder_norm`, `decoder_pred`):
here the encoder's keys go under `encoder.`. A file with the encoder only (the released `mae_pretrain_vit_*.pth`)
loads as a backbone: `create_backbone("vit_b16", weights=FILE, num_classes=0)`; so do MVP's
(`create_backbone("vit_s16_mvp", weights=FILE, num_classes=0)`: MVP's feature is the class token after the final
norm, which is timm's pooled output).
"""
from __future__ import annotations

import os

from vislearn.backbones import create_backbone
from vislearn.backbones.loading import load_state_checked
from vislearn.backbones.vit import MAE_DECODER_PREFIXES, read_vit_state

from .mae import MaskedAutoencoder

# arch -> (backbone, decoder width, decoder depth, decoder heads), as models_mae.py's builders
MAE_ARCHS = {
    "mae_vit_base_patch16": ("vit_b16", 512, 8, 16),
    "mae_vit_large_patch16": ("vit_l16", 512, 8, 16),
    "mae_vit_huge_patch14": ("vit_h14", 512, 8, 16),
}


def mae_state_from_official(state: dict) -> dict:
    """models_mae.py names -> MaskedAutoencoder names (the encoder's keys under `encoder.`)."""
    return {(k if k.startswith(MAE_DECODER_PREFIXES) else f"encoder.{k}"): v for k, v in state.items()}


def build_official_mae(arch: str = "mae_vit_base_patch16", img_size: int = 224, norm_pix_loss: bool = True,
                       mask_ratio: float = 0.75) -> MaskedAutoencoder:
    backbone, dim, depth, heads = MAE_ARCHS[arch]
    encoder = create_backbone(backbone, img_size=img_size, num_classes=0)
    return MaskedAutoencoder(encoder, decoder_dim=dim, decoder_depth=depth, decoder_heads=heads,
                             mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss)


def load_official_mae(weights: str | os.PathLike | dict, arch: str = "mae_vit_base_patch16", img_size: int = 224,
                      norm_pix_loss: bool = True) -> MaskedAutoencoder:
    """An official MAE pre-training checkpoint (encoder and decoder) as a MaskedAutoencoder, loaded strictly."""
    state, source = read_vit_state(weights)
    model = build_official_mae(arch, img_size, norm_pix_loss)
    load_state_checked(model, mae_state_from_official(state), source)
    return model
