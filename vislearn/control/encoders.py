"""The pixel encoders the MVP papers compare, by one name each (`build_encoder(spec)`), all taking raw frames.

Specs (an optional `@SIZE` sets the input side; frames are resized to it):
- `ckpt:PATH`: an encoder checkpoint of `vislearn pretrain mae` (RUN/encoder.pth: MAE on hand-object frames);
  its backbone, input size and pixel normalisation come from the file;
- `mvp:ARCH:PATH`: a release file of MVP (ir413/mvp) or MAE, ARCH one of `vit_s16_mvp`, `vit_b16`, `vit_l16`;
- `imagenet`: torchvision's ImageNet MobileNetV2 (the verified local file), 1280-d after global pooling;
- `random:ARCH`: ARCH (`vit_p_tiny`, `vit_c_tiny`, `mobilenet_v2`, ...) with random weights, frozen;
- `scratch:ARCH`: the same network, trained end to end with the policy (not frozen, no feature cache);
- `state`: no pixels: the state-based oracle (the policy reads Meta-World's full state).

A ViT's feature is its class token after the final norm (timm's pooled output: MVP's `forward_norm`)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vislearn.common.errors import UserError
from vislearn.common.freeze import freeze

MVP_ARCHS = ("vit_s16_mvp", "vit_b16", "vit_l16")
DEFAULT_SIZE = {"mobilenet_v2": 96}  # a ViT's default is its builder's (vit_*_tiny: 64 here, see `_random`)
KINDS = ("ckpt", "mvp", "imagenet", "random", "scratch", "state")


@dataclass(frozen=True)
class EncoderSpec:
    kind: str
    arch: str = ""
    path: str = ""
    size: int | None = None

    @property
    def frozen(self) -> bool:
        return self.kind != "scratch"

    @property
    def pixels(self) -> bool:
        return self.kind != "state"

    def __str__(self) -> str:
        body = {"ckpt": f"ckpt:{self.path}", "mvp": f"mvp:{self.arch}:{self.path}", "random": f"random:{self.arch}",
                "scratch": f"scratch:{self.arch}"}.get(self.kind, self.kind)
        return body + (f"@{self.size}" if self.size else "")

    @property
    def slug(self) -> str:
        """A file-name-safe name (feature caches, table rows)."""
        name = {"ckpt": f"ckpt-{os.path.basename(os.path.dirname(os.path.abspath(self.path)))}",
                "mvp": f"mvp-{self.arch}"}.get(self.kind, f"{self.kind}-{self.arch}" if self.arch else self.kind)
        return name + (f"-{self.size}" if self.size else "")


def parse_spec(text: str, where: str = "encoder") -> EncoderSpec:
    body, _, size = str(text).partition("@")
    if size and not (size.isdigit() and 16 <= int(size) <= 1024):
        raise UserError(f"{where}: {text!r}: the size after @ must be 16 to 1024 pixels")
    kind, _, rest = body.partition(":")
    n = int(size) if size else None
    if kind in ("imagenet", "state") and not rest:
        return EncoderSpec(kind, size=n)
    if kind in ("random", "scratch") and rest:
        return EncoderSpec(kind, arch=rest, size=n)
    if kind == "ckpt" and rest:
        return EncoderSpec(kind, path=rest, size=n)
    if kind == "mvp":
        arch, _, path = rest.partition(":")
        if arch in MVP_ARCHS and path:
            return EncoderSpec(kind, arch=arch, path=path, size=n)
    raise UserError(f"{where}: {text!r} is not an encoder; expected ckpt:PATH, mvp:ARCH:PATH (ARCH one of "
                    f"{', '.join(MVP_ARCHS)}), imagenet, random:ARCH, scratch:ARCH or state, each with an optional @SIZE")


class PixelEncoder(nn.Module):
    """uint8 frames [B, H, W, 3] -> features [B, dim]: resize to the input side, normalise, run the trunk."""

    def __init__(self, trunk: nn.Module, dim: int, input_size: int, mean, std, spec: EncoderSpec, pool: bool):
        super().__init__()
        self.trunk, self.dim, self.input_size, self.spec, self.pool = trunk, dim, input_size, spec, pool
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        y = self.trunk(self.preprocess(frames))
        return y.mean(dim=(2, 3)) if self.pool else y


def _vit(arch: str, size: int | None, weights=None, **kwargs) -> tuple[nn.Module, int, int]:
    from vislearn.backbones import create_backbone

    extra = {"img_size": size} if size else {}
    net = create_backbone(arch, weights=weights, num_classes=0, **extra, **kwargs)
    return net, net.num_features, net.patch_embed.img_size[0]


def build_encoder(spec: EncoderSpec | str, seed: int = 0) -> PixelEncoder | None:
    """The encoder of `spec` (None for `state`); frozen (eval mode, no gradients) unless `scratch:`."""
    from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD, load_encoder_checkpoint

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    mean, std, pool = IMAGENET_MEAN, IMAGENET_STD, False
    if spec.kind == "state":
        return None
    if spec.kind == "ckpt":
        overrides = {"img_size": spec.size} if spec.size else {}
        trunk, info = load_encoder_checkpoint(spec.path, num_classes=0, **overrides)
        dim, size, mean, std = trunk.num_features, spec.size or info.input_size, info.mean, info.std
    elif spec.kind == "mvp":
        trunk, dim, size = _vit(spec.arch, spec.size, weights=spec.path)
    elif spec.kind == "imagenet":
        from vislearn.backbones.mobilenet import mobilenet_v2_2d

        trunk, dim, size, pool = mobilenet_v2_2d("mobilenet_v2_imagenet").features, 1280, spec.size or 96, True
    else:  # random, scratch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if spec.arch == "mobilenet_v2":
                from vislearn.backbones.mobilenet import mobilenet_v2_2d

                trunk, dim, size, pool = mobilenet_v2_2d().features, 1280, spec.size or 96, True
            elif spec.arch.startswith("vit_"):
                trunk, dim, size = _vit(spec.arch, spec.size or (64 if spec.arch.endswith("_tiny") else None))
            else:
                raise UserError(f"encoder: {spec}: unknown architecture {spec.arch!r}; use vit_p_tiny, vit_c_tiny, "
                                f"another ViT of `vislearn backbones list`, or mobilenet_v2")
    enc = PixelEncoder(trunk, dim, size, mean, std, spec, pool)
    return freeze(enc) if spec.frozen else enc


@torch.no_grad()
def encode_frames(encoder: PixelEncoder, frames: np.ndarray, batch_size: int = 256, progress=None) -> np.ndarray:
    """Features [N, dim] float32 of uint8 frames [N, H, W, 3] (a frozen encoder: computed once, cached by callers)."""
    out = np.empty((len(frames), encoder.dim), dtype=np.float32)
    for i in range(0, len(frames), batch_size):
        out[i:i + batch_size] = encoder(torch.from_numpy(np.ascontiguousarray(frames[i:i + batch_size]))).numpy()
        if progress is not None:
            progress(min(i + batch_size, len(frames)))
    return out
