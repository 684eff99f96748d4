"""ViT_P and ViT_C: "Early Convolutions Help Transformers See Better" (Xiao et al., NeurIPS 2021), on timm.

Both are timm's `VisionTransformer` (pre-norm blocks, class token, learned position embedding, final
LayerNorm, linear head); they differ only in the `embed_layer`:
- ViT_P: timm's `PatchEmbed`, one 16x16 stride-16 convolution (the original ViT "patchify" stem);
- ViT_C: `ConvStem`, a stack of 3x3 convolutions, each stride 2 with doubled channels or stride 1 with the
  same channels, each followed by BatchNorm and ReLU, then one 1x1 convolution (with bias, without norm
  and activation) to the transformer width. The output grid equals the patchify stem's (total stride
  16), and ViT_C has one transformer block fewer than ViT_P so that their flops match.
`ConvStem` is timm's `HybridEmbed` (a CNN `backbone`, then a `proj` convolution) with a 1x1 `proj`, so
the model is plain timm: `forward_features`, `forward_intermediates` (NCHW maps for dense tasks),
`patch_drop_rate`, `dynamic_img_size`, `global_pool`, `set_input_size` work for both stems.

Sizes (`SIZES`; ViT_P of the paper's Table 1, ViT_C = the same with the conv stem and depth - 1):
  tiny  width 192, 6 blocks, 3 heads, MLP x3, 128x128 input (8x8 tokens), stem 24-48-96-192 (not a paper size:
        one that trains on two CPU cores; the 1GF stem, whose extra cost equals one block at this grid)
  1gf   width 192, 12 blocks, 3 heads, MLP x3, stem 24-48-96-192 (all stride 2)
  4gf   width 384, 12 blocks, 6 heads, MLP x3, stem 48-96-192-384 (all stride 2)
  18gf  width 768, 12 blocks (ViT-B), 12 heads, MLP x4, stem 64-128-128-256-256-512, strides 2-2-1-2-1-2
  36gf  width 1024, 14 blocks, 16 heads, MLP x4, the 18GF stem
`vislearn backbones list` prints their parameters and flops.

Weights (`weights=` of every builder: a local file or a state dict; never a hub):
- timm's names (what these models, a timm `VisionTransformer` of the same config, and MAE save);
- the official pycls layout (facebookresearch/pycls `pycls/models/vit.py`: `stem.*`, `class_token`,
  `pos_embedding`, `encoder.block_{i}.*`, `head.head_fc.*`; a pycls checkpoint's `model_state`, or
  `ema_state` with `ema=True`), renamed by `timm_state_from_pycls`. pycls normalises with LayerNorm eps 1e-5
  (timm: 1e-6), so a model built from a pycls file uses 1e-5 unless `ln_eps` says otherwise, and pycls's
  "pooled" classifier (no class token: mean of the final-normed tokens) becomes `class_token=False,
  global_pool="avg", fc_norm=False`.
A position embedding for another grid is resampled (timm's `resample_abs_pos_embed`); any other key or shape
that does not fit is a one-line UserError (`load_state_checked`). With `num_classes=0` a file's head is not used.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import HybridEmbed, resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.errors import UserError

from .loading import load_state_checked

TIMM_LN_EPS = 1e-6
PYCLS_LN_EPS = 1e-5


@dataclass(frozen=True)
class ViTSize:
    """One size of the pair: the ViT_P transformer and the ViT_C stem (conv channels and strides)."""

    width: int
    depth: int  # ViT_P's; ViT_C has depth - 1
    heads: int
    mlp_ratio: float
    stem_channels: tuple[int, ...]
    stem_strides: tuple[int, ...]
    img_size: int = 224
    patch_size: int = 16


_STEM_18GF = ((64, 128, 128, 256, 256, 512), (2, 2, 1, 2, 1, 2))
SIZES = {
    "tiny": ViTSize(192, 6, 3, 3.0, (24, 48, 96, 192), (2, 2, 2, 2), img_size=128),
    "1gf": ViTSize(192, 12, 3, 3.0, (24, 48, 96, 192), (2, 2, 2, 2)),
    "4gf": ViTSize(384, 12, 6, 3.0, (48, 96, 192, 384), (2, 2, 2, 2)),
    "18gf": ViTSize(768, 12, 12, 4.0, *_STEM_18GF),
    "36gf": ViTSize(1024, 14, 16, 4.0, *_STEM_18GF),
}


def conv_stack(in_chans: int, channels: tuple[int, ...], strides: tuple[int, ...]) -> nn.Sequential:
    """The 3x3 part of the conv stem: (conv 3x3 no bias, BatchNorm, ReLU) per entry of `channels`."""
    if len(channels) != len(strides) or not channels:
        raise ValueError(f"conv stem: {len(channels)} channel counts but {len(strides)} strides")
    layers, c_in = [], in_chans
    for i, (c, s) in enumerate(zip(channels, strides)):
        if s not in (1, 2) or (i and c != c_in * s):
            raise ValueError(f"conv stem: conv {i} ({c_in} -> {c} channels, stride {s}) is neither stride 2 with "
                             "doubled channels nor stride 1 with the same channels")
        layers += [nn.Conv2d(c_in, c, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        c_in = c
    stack = nn.Sequential(*layers)
    stack.num_features = c_in  # what HybridEmbed reads when given the feature size (no trial forward pass)
    return stack


class ConvStem(HybridEmbed):
    """ViT_C's stem as timm's `embed_layer`: `backbone` = `conv_stack`, `proj` = the final 1x1 conv.

    timm calls it with the model's `patch_size` (16): the stack's total stride must equal it; the 1x1
    projection is HybridEmbed's `patch_size` 1, and `feat_ratio()` reports the total stride.
    """

    def __init__(self, stem_channels: tuple[int, ...], stem_strides: tuple[int, ...], img_size=224, patch_size=16,
                 in_chans: int = 3, embed_dim: int = 768, bias: bool = True, **kwargs):
        stride = math.prod(stem_strides)
        if stride != patch_size:
            raise ValueError(f"conv stem: total stride {stride} != patch size {patch_size}")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        super().__init__(conv_stack(in_chans, tuple(stem_channels), tuple(stem_strides)), img_size=size, patch_size=1,
                         feature_size=tuple(s // stride for s in size), feature_ratio=stride, in_chans=in_chans,
                         embed_dim=embed_dim, bias=bias, **kwargs)


# ----------------------------------------------------------------------------- the official pycls layout
_PYCLS_RENAMES = [  # (pycls key pattern, timm key template); the stem's index i -> nn.Sequential index 3i, 3i+1
    (r"stem\.patchify\.(weight|bias)", "patch_embed.proj.{0}"),
    (r"stem\.cstem_last_conv\.(weight|bias)", "patch_embed.proj.{0}"),
    (r"class_token", "cls_token"),
    (r"pos_embedding", "pos_embed"),
    (r"encoder\.block_(\d+)\.ln_1\.(weight|bias)", "blocks.{0}.norm1.{1}"),
    (r"encoder\.block_(\d+)\.self_attention\.attn_proj\.(weight|bias)", "blocks.{0}.attn.qkv.{1}"),
    (r"encoder\.block_(\d+)\.self_attention\.out_proj\.(weight|bias)", "blocks.{0}.attn.proj.{1}"),
    (r"encoder\.block_(\d+)\.ln_2\.(weight|bias)", "blocks.{0}.norm2.{1}"),
    (r"encoder\.block_(\d+)\.mlp_block\.linear_1\.(weight|bias)", "blocks.{0}.mlp.fc1.{1}"),
    (r"encoder\.block_(\d+)\.mlp_block\.linear_2\.(weight|bias)", "blocks.{0}.mlp.fc2.{1}"),
    (r"encoder\.ln\.(weight|bias)", "norm.{0}"),
    (r"head\.head_fc\.(weight|bias)", "head.{0}"),
]
_PYCLS_STEM = re.compile(r"stem\.cstem(\d+)_(conv|bn)\.(\w+)")


def is_pycls_state(state: dict) -> bool:
    """Whether a state dict is in the official pycls ViT layout."""
    return "pos_embedding" in state or any(k.startswith("encoder.block_") for k in state)


def timm_state_from_pycls(state: dict[str, torch.Tensor], source: str = "<state dict>") -> dict[str, torch.Tensor]:
    """A pycls ViT state dict (patchify or conv stem, token or pooled classifier) under timm's names."""
    out, unknown = {}, []
    for key, value in state.items():
        m = _PYCLS_STEM.fullmatch(key)
        if m:
            i, kind, rest = int(m[1]), m[2], m[3]
            out[f"patch_embed.backbone.{3 * i + (kind == 'bn')}.{rest}"] = value
            continue
        for pattern, template in _PYCLS_RENAMES:
            m = re.fullmatch(pattern, key)
            if m:
                out[template.format(*m.groups())] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"{source}: not a pycls ViT state dict: unknown keys {', '.join(sorted(unknown)[:5])}"
                        + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    return out


def read_vit_state(weights: str | os.PathLike | dict, ema: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, its source's name) from a file or a dict: a plain state dict, or one under 'model' / 'state_dict'
    (timm, MAE, this project) or 'model_state' / 'ema_state' (a pycls checkpoint; `ema` picks the EMA weights).
    A DistributedDataParallel 'module.' prefix is removed."""
    source = "<state dict>" if isinstance(weights, dict) else os.fspath(weights)
    obj = weights if isinstance(weights, dict) else read_torch_file(weights, "weights file")
    if isinstance(obj, dict):
        keys = ("ema_state",) if ema else ("model_state", "model", "state_dict")
        for key in keys:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        else:
            if ema:
                raise UserError(f"{source}: ema=True but there is no 'ema_state' (a pycls checkpoint's EMA weights)")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{source}: expected a state dict (parameter name -> tensor), or a checkpoint with one under "
                        "'model', 'state_dict' or 'model_state'")
    return {k.removeprefix("module."): v for k, v in obj.items()}, source


# an MAE pre-training checkpoint (facebookresearch/mae `models_mae.py`, and `vislearn pretrain mae`) holds the
# decoder beside the encoder's timm names: loading it as a backbone takes the encoder
MAE_DECODER_PREFIXES = ("decoder_", "mask_token")


def load_vit_state(model: VisionTransformer, state: dict[str, torch.Tensor], source: str = "<state dict>") -> None:
    """Load a timm- or pycls-named state dict into `model` strictly (the file's head is skipped when the model has
    none; a file with no head at all, a pre-trained encoder, leaves the model's new head as initialised; an MAE
    decoder in the file is skipped; a position embedding for another grid is resampled). The LayerNorm eps is the model's: build with
    `ln_eps=PYCLS_LN_EPS` for pycls weights (the builders' `weights=` does that)."""
    if is_pycls_state(state):
        state = timm_state_from_pycls(state, source)
    state = dict(state)
    pos, own = state.get("pos_embed"), model.pos_embed
    if pos is not None and own is not None and pos.shape != own.shape and pos.shape[-1] == own.shape[-1]:
        prefix = 0 if model.no_embed_class else model.num_prefix_tokens
        old = math.isqrt(pos.shape[1] - prefix)
        if old * old == pos.shape[1] - prefix:
            state["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(model.patch_embed.grid_size),
                                                        old_size=[old, old], num_prefix_tokens=prefix, verbose=False)
    state = {k: v for k, v in state.items() if not k.startswith(MAE_DECODER_PREFIXES)}
    headless_file = not any(k.startswith("head.") for k in state)
    ignore = ("head.",) if model.num_classes == 0 or headless_file else ()
    load_state_checked(model, state, source, ignore_prefixes=ignore)


# ----------------------------------------------------------------------------- builders
def build_vit(size: ViTSize, conv_stem: bool, weights: str | os.PathLike | dict | None = None, ema: bool = False,
              ln_eps: float | None = None, **kwargs) -> VisionTransformer:
    """ViT_C (`conv_stem=True`) or ViT_P of `size`, optionally with `weights` (a file or a state dict).

    `kwargs` go to timm's VisionTransformer (num_classes, img_size, global_pool, class_token, drop_path_rate,
    patch_drop_rate, dynamic_img_size, ...) and may override the size's own (img_size, depth, ...).
    """
    state, source = read_vit_state(weights, ema) if weights is not None else (None, "")
    if state is not None and is_pycls_state(state):
        ln_eps = PYCLS_LN_EPS if ln_eps is None else ln_eps
        if "class_token" not in state:  # pycls's "pooled" classifier
            kwargs = {"class_token": False, "global_pool": "avg", "fc_norm": False, **kwargs}
    args = dict(img_size=size.img_size, patch_size=size.patch_size, embed_dim=size.width,
                depth=size.depth - int(conv_stem), num_heads=size.heads, mlp_ratio=size.mlp_ratio,
                norm_layer=partial(nn.LayerNorm, eps=TIMM_LN_EPS if ln_eps is None else ln_eps))
    if conv_stem:
        args["embed_layer"] = partial(ConvStem, size.stem_channels, size.stem_strides)
    args.update(kwargs)
    model = VisionTransformer(**args)
    if state is not None:
        load_vit_state(model, state, source)
    return model


def _builder(size_name: str, conv_stem: bool):
    def build(weights: str | os.PathLike | dict | None = None, **kwargs) -> VisionTransformer:
        return build_vit(SIZES[size_name], conv_stem, weights, **kwargs)

    kind = "ViT_C (conv stem)" if conv_stem else "ViT_P (patchify stem)"
    build.__name__ = build.__qualname__ = f"vit_{'c' if conv_stem else 'p'}_{size_name}"
    build.__doc__ = f"{kind}, size {size_name} ({SIZES[size_name]}); see `build_vit`."
    return build


vit_p_tiny, vit_c_tiny = _builder("tiny", False), _builder("tiny", True)
vit_p_1gf, vit_c_1gf = _builder("1gf", False), _builder("1gf", True)
vit_p_4gf, vit_c_4gf = _builder("4gf", False), _builder("4gf", True)
vit_p_18gf, vit_c_18gf = _builder("18gf", False), _builder("18gf", True)
vit_p_36gf, vit_c_36gf = _builder("36gf", False), _builder("36gf", True)


# ----------------------------------------------------------------------------- the MAE and MVP releases' ViTs
# Patchify ViTs with MLP ratio 4 as facebookresearch/mae (`models_vit.py`, `models_mae.py`) and ir413/mvp
# (`mvp/backbones/vit.py`) build them on timm: their checkpoints (`model` key, timm names) load by `weights=`.
# MVP's ViT-S has 12 heads of 32 channels (timm's vit_small has 6 of 64); MVP's ViT-L also comes at 256 px
# (`img_size=256`). The MAE fine-tuned checkpoints pool the mean token: `global_pool="avg"` (fc_norm, no norm).
RELEASE_SIZES = {
    "s16_mvp": ViTSize(384, 12, 12, 4.0, (), ()),
    "b16": ViTSize(768, 12, 12, 4.0, (), ()),
    "l16": ViTSize(1024, 24, 16, 4.0, (), ()),
    "h14": ViTSize(1280, 32, 16, 4.0, (), (), patch_size=14),
}


def _release_builder(size_name: str):
    def build(weights: str | os.PathLike | dict | None = None, **kwargs) -> VisionTransformer:
        return build_vit(RELEASE_SIZES[size_name], False, weights, **kwargs)

    build.__name__ = build.__qualname__ = f"vit_{size_name}"
    build.__doc__ = f"The MAE / MVP releases' ViT-{size_name} ({RELEASE_SIZES[size_name]}); see `build_vit`."
    return build


vit_s16_mvp, vit_b16, vit_l16, vit_h14 = (_release_builder(n) for n in RELEASE_SIZES)
