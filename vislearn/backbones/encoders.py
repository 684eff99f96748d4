"""Encoder checkpoints, the contract between families (DESIGN.md): a file holding the weights (`model`, timm names
for the ViTs) with the backbone's name and arguments (`backbone`, `backbone_args`), its input size and pixel
normalisation (`input_size`, `mean`, `std`) and where it came from (`source`). `vislearn pretrain mae` writes one
(RUN/encoder.pth); every family loads it by path with `load_encoder_checkpoint`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from torch import nn

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.errors import UserError

ENCODER_FORMAT = "vislearn-encoder"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class EncoderInfo:
    backbone: str
    backbone_args: dict
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    source: dict = field(default_factory=dict)


def encoder_checkpoint(model: nn.Module, info: EncoderInfo) -> dict:
    """What `torch.save` writes for an encoder checkpoint."""
    return {"format": ENCODER_FORMAT, "model": model.state_dict(), "backbone": info.backbone,
            "backbone_args": dict(info.backbone_args), "input_size": info.input_size, "mean": list(info.mean),
            "std": list(info.std), "source": dict(info.source)}


def load_encoder_checkpoint(path: str | os.PathLike, **overrides) -> tuple[nn.Module, EncoderInfo]:
    """The encoder of checkpoint `path`, built by name with its saved arguments (`overrides` win: e.g.
    `num_classes=0`, another `img_size`, whose position embedding is then resampled), and what the file says."""
    from .registry import create_backbone  # noqa: PLC0415

    ckpt = read_torch_file(path, "encoder checkpoint")
    if not isinstance(ckpt, dict) or "backbone" not in ckpt or not isinstance(ckpt.get("model"), dict):
        raise UserError(f"{path}: not an encoder checkpoint (expected 'model' and 'backbone', as "
                        "`vislearn pretrain mae` writes in RUN/encoder.pth)")
    args = dict(ckpt.get("backbone_args") or {})
    info = EncoderInfo(ckpt["backbone"], args, int(ckpt.get("input_size", args.get("img_size", 224))),
                       tuple(ckpt.get("mean", IMAGENET_MEAN)), tuple(ckpt.get("std", IMAGENET_STD)),
                       dict(ckpt.get("source") or {}))
    model = create_backbone(info.backbone, weights=ckpt["model"], **{**args, **overrides})
    return model, info
