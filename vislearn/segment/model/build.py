"""SAM by name, from a checkpoint, or from a pre-trained encoder.

`ARCHS`: the official sizes (`vit_b`, `vit_l`, `vit_h`: 1024 px, patch 16, window 14, 256-channel embedding, global
blocks as released), MobileSAM (`vit_t_mobile`, TinyViT), and small sizes that train and run on a CPU: ViT_P / ViT_C
"tiny" of the backbones family (width 192, MLP x3) at 256 or 512 px with 8x8 windows. The prompt encoder and the mask
decoder are the official ones at every size (width 256, a depth-2 two-way transformer with MLP 2048 and 8 heads).

Checkpoints (`load_sam`):
- ours (`save_sam`): {"format": "vislearn-sam", "model": state dict, "arch": SamArch fields, "source": ...};
- an official `sam_vit_{b,l,h}_*.pth` or MobileSAM `mobile_sam.pt` (a bare state dict, official names): the size is
  read from the shapes (width, blocks, position-embedding grid), and the file loads strictly, with no key renamed.
A file that is not a SAM checkpoint, or one whose shapes do not fit the size asked for, is a one-line UserError.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

import torch
from torch import nn

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path

from .image_encoder import SamImageEncoder
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import SAM_PIXEL_MEAN, SAM_PIXEL_STD, Sam
from .transformer import TwoWayTransformer

SAM_FORMAT = "vislearn-sam"
_TINY_STEM = ((24, 48, 96, 192), (2, 2, 2, 2))


@dataclass(frozen=True)
class SamArch:
    """Everything that fixes a SAM's shapes. `encoder`: "vit" (SamImageEncoder; a conv stem when `stem_channels`)
    or "tiny_vit" (MobileSAM's TinyViT)."""

    name: str
    img_size: int = 1024
    encoder: str = "vit"
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    stem_channels: tuple[int, ...] = ()
    stem_strides: tuple[int, ...] = ()
    patch_size: int = 16
    prompt_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp: int = 2048
    decoder_heads: int = 8
    iou_head_hidden: int = 256
    pixel_mean: tuple[float, ...] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, ...] = SAM_PIXEL_STD

    @property
    def embedding_size(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SamArch":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


def global_blocks(depth: int) -> tuple[int, ...]:
    """Which blocks attend globally. Official: four, evenly spaced and ending with the last (ViT-B 2, 5, 8, 11;
    ViT-L 5, 11, 17, 23; ViT-H 7, 15, 23, 31); below 12 blocks, every third block counting back from the last."""
    if depth >= 12:
        return tuple((k + 1) * depth // 4 - 1 for k in range(4))
    return tuple(range(depth - 1, -1, -3))[::-1]


def _tiny(name: str, img_size: int, conv_stem: bool) -> SamArch:
    depth = 5 if conv_stem else 6  # ViT_C has one block fewer than ViT_P (equal flops)
    stem = _TINY_STEM if conv_stem else ((), ())
    return SamArch(name, img_size=img_size, width=192, depth=depth, heads=3, mlp_ratio=3.0, window_size=8,
                   global_attn_indexes=global_blocks(depth), stem_channels=stem[0], stem_strides=stem[1])


ARCHS: dict[str, SamArch] = {
    "vit_b": SamArch("vit_b", width=768, depth=12, heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamArch("vit_l", width=1024, depth=24, heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamArch("vit_h", width=1280, depth=32, heads=16, global_attn_indexes=(7, 15, 23, 31)),
    "vit_t_mobile": SamArch("vit_t_mobile", encoder="tiny_vit", width=320, depth=12, heads=10,
                            global_attn_indexes=()),
    "vit_tiny_p256": _tiny("vit_tiny_p256", 256, conv_stem=False),
    "vit_tiny_c256": _tiny("vit_tiny_c256", 256, conv_stem=True),
    "vit_tiny_c512": _tiny("vit_tiny_c512", 512, conv_stem=True),
}


def arch_by_name(name: str) -> SamArch:
    if name not in ARCHS:
        raise UserError(f"unknown SAM size {name!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[name]


def build_image_encoder(arch: SamArch) -> nn.Module:
    if arch.encoder == "tiny_vit":
        from .tiny_vit import build_tiny_vit_encoder  # noqa: PLC0415

        return build_tiny_vit_encoder(img_size=arch.img_size)
    return SamImageEncoder(img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.width,
                           depth=arch.depth, num_heads=arch.heads, mlp_ratio=arch.mlp_ratio,
                           window_size=arch.window_size, global_attn_indexes=arch.global_attn_indexes,
                           out_chans=arch.prompt_dim, stem_channels=arch.stem_channels or None,
                           stem_strides=arch.stem_strides or None)


def build_sam(arch: str | SamArch) -> Sam:
    """A SAM of this size with fresh weights."""
    arch = arch_by_name(arch) if isinstance(arch, str) else arch
    grid = (arch.embedding_size, arch.embedding_size)
    prompt_encoder = PromptEncoder(embed_dim=arch.prompt_dim, image_embedding_size=grid,
                                   input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans)
    transformer = TwoWayTransformer(depth=arch.decoder_depth, embedding_dim=arch.prompt_dim,
                                    mlp_dim=arch.decoder_mlp, num_heads=arch.decoder_heads)
    mask_decoder = MaskDecoder(transformer_dim=arch.prompt_dim, transformer=transformer, num_multimask_outputs=3,
                               iou_head_depth=3, iou_head_hidden_dim=arch.iou_head_hidden)
    return Sam(build_image_encoder(arch), prompt_encoder, mask_decoder, arch.pixel_mean, arch.pixel_std)


# ----------------------------------------------------------------------------- official files: size from shapes
_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")


def arch_of_official_state(state: dict[str, torch.Tensor], source: str = "<state dict>") -> SamArch:
    """The SamArch an official-layout state dict was saved from, read off its shapes."""
    if any(k.startswith("image_encoder.layers.") for k in state):  # MobileSAM's TinyViT
        return ARCHS["vit_t_mobile"]
    pos = state.get("image_encoder.pos_embed")
    if pos is None or pos.dim() != 4:
        raise UserError(f"{source}: not a SAM checkpoint (no image_encoder.pos_embed [1, h, w, C])")
    width, grid = int(pos.shape[-1]), int(pos.shape[1])
    depth = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    patch = state.get("image_encoder.patch_embed.proj.weight")
    patch_size = int(patch.shape[-1]) if patch is not None and patch.dim() == 4 and patch.shape[-1] > 1 else 16
    rel_h = [int(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)
             if f"image_encoder.blocks.{i}.attn.rel_pos_h" in state]
    windowed = [(r + 1) // 2 for r in rel_h if (r + 1) // 2 != grid]
    global_idx = tuple(i for i, r in enumerate(rel_h) if (r + 1) // 2 == grid)
    head_dim = int(state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]) if rel_h else 64
    stem = [k for k in state if k.startswith("image_encoder.patch_embed.backbone.")]
    if stem:
        raise UserError(f"{source}: a conv-stem SAM without its size; save it with `save_sam` (vislearn checkpoints "
                        "carry their size)")
    mlp = state.get("image_encoder.blocks.0.mlp.lin1.weight")
    shapes = dict(img_size=grid * patch_size, width=width, depth=depth, heads=width // head_dim,
                  mlp_ratio=(mlp.shape[0] / width) if mlp is not None else 4.0,
                  window_size=windowed[0] if windowed else 14, global_attn_indexes=global_idx, patch_size=patch_size)
    decoder = {"prompt_dim": "image_encoder.neck.0.weight", "mask_in_chans": "prompt_encoder.mask_downscaling.3.weight",
               "decoder_mlp": "mask_decoder.transformer.layers.0.mlp.lin1.weight",
               "iou_head_hidden": "mask_decoder.iou_prediction_head.layers.0.weight"}
    shapes.update({field: int(state[key].shape[0]) for field, key in decoder.items() if key in state})
    shapes["decoder_depth"] = len({k.split(".")[3] for k in state if k.startswith("mask_decoder.transformer.layers.")})
    for arch in ARCHS.values():  # the official sizes by name (decoder heads are not in the shapes: 8, as released)
        if arch.encoder == "vit" and not arch.stem_channels and dataclasses.replace(arch, **shapes) == arch:
            return arch
    return SamArch("custom", **shapes)


def _unwrap(ckpt, source: str) -> tuple[dict, SamArch | None, dict]:
    if isinstance(ckpt, dict) and ckpt.get("format") == SAM_FORMAT:
        if not isinstance(ckpt.get("model"), dict) or not isinstance(ckpt.get("arch"), dict):
            raise UserError(f"{source}: a vislearn SAM checkpoint without 'model' and 'arch'")
        return ckpt["model"], SamArch.from_dict(ckpt["arch"]), dict(ckpt.get("source") or {})
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "format" not in ckpt:
        ckpt = ckpt["model"]  # a training checkpoint of the official layout, weights under "model"
    if not isinstance(ckpt, dict) or not any(isinstance(k, str) and k.startswith("image_encoder.") for k in ckpt):
        raise UserError(f"{source}: not a SAM checkpoint (expected a vislearn SAM file or an official sam_vit_*.pth "
                        "state dict with image_encoder.* keys)")
    return ckpt, None, {"official": True}


def load_sam_state(model: Sam, state: dict, source: str) -> None:
    """Strict load; a missing key or a shape that does not fit is one line naming the first few."""
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if wrong or missing or extra:
        parts = ([f"wrong shapes: {', '.join(wrong[:3])}"] if wrong else []) + \
                ([f"missing: {', '.join(missing[:3])}"] if missing else []) + \
                ([f"unexpected: {', '.join(extra[:3])}"] if extra else [])
        raise UserError(f"{source}: checkpoint of the wrong size for this SAM: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def load_sam(path: str | os.PathLike, arch: str | SamArch | None = None) -> tuple[Sam, SamArch]:
    """The SAM saved in `path` (ours or an official file) in eval mode, and its size. With `arch`, the file must fit
    that size (else one line: the checkpoint is of the wrong size)."""
    source = str(path)
    state, saved_arch, _ = _unwrap(read_torch_file(path, "SAM checkpoint"), source)
    found = saved_arch or arch_of_official_state(state, source)
    want = (arch_by_name(arch) if isinstance(arch, str) else arch) if arch is not None else found
    model = build_sam(want)
    load_sam_state(model, state, source)
    return model.eval(), want


def save_sam(path: str | os.PathLike, model: Sam, arch: SamArch, half: bool = False, **source) -> None:
    """Our checkpoint: weights with official names, the size, and where it came from (atomic). `half`: floating
    tensors stored as float16 (half the file; `load_sam` loads them into the float32 model)."""
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        torch.save({"format": SAM_FORMAT, "model": state, "arch": arch.to_dict(), "source": source}, tmp)
