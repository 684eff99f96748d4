"""Embedding networks and the run's `embedder.pt`: what `vislearn pretrain retrieve` loads.

An embedder is an optional frozen trunk (ImageNet MobileNetV2 for the rendered objects; `probe.embed` runs it)
followed by a trained head: an MLP on the trunk's features, or a small CNN on the pixels (8x8 digits). Embeddings
are L2-normalised (pytorch-metric-learning's default `LpDistance` normalises too, so training and retrieval
compare the same distances).

`embedder.pt` holds the head's architecture and weights, the trunk's name, the input size, the set it was
trained on and its coarse classes: the file alone is enough to embed new images. It is not an encoder checkpoint
of `vislearn.backbones` (the head is not a registered backbone); a family that wants the trunk loads the
ImageNet MobileNetV2 by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vislearn.common.checkpoint import read_torch_file, load_state, save_checkpoint
from vislearn.common.errors import UserError

FORMAT = "vislearn-metric-embedder"


def mlp_head(in_dim: int, dim: int, hidden: int = 512) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


def cnn_head(dim: int, width: int = 32) -> nn.Module:
    """Two 3x3 convolutions and a pooling on 8x8 images, then an MLP: ~0.3 M parameters."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * width * 16, 256), nn.ReLU(inplace=True), nn.Linear(256, dim))


HEADS = {"mlp": mlp_head, "cnn": cnn_head}


def build_head(arch: str, args: dict) -> nn.Module:
    return HEADS[arch](**args)


def head_for(spec, dim: int, in_dim: int | None = None) -> tuple[str, dict]:
    """(architecture, arguments) of the head for a sub-cluster set: an MLP on trunk features, else a CNN."""
    if spec.trunk is not None:
        return "mlp", {"in_dim": int(in_dim), "dim": dim}
    if spec.size != 8:
        raise UserError(f"{spec.name}: the pixel head is made for 8x8 images, got {spec.size}")
    return "cnn", {"dim": dim}


def pixels(images: torch.Tensor) -> torch.Tensor:
    """What a pixel head reads: uint8 [N,3,H,W] -> float, ImageNet-normalised (`frames.normalise`)."""
    from vislearn.pretrain.frames import normalise  # noqa: PLC0415

    return normalise(images)


def trunk_embedder(name: str, size: int):
    """`images uint8 [N,3,H,W] -> features array` of the named frozen trunk at `size` px (`probe.embed`)."""
    from vislearn.pretrain.probe import Encoder, embed, load_encoder  # noqa: PLC0415

    enc = load_encoder(name)
    enc = Encoder(enc.module, size, enc.mean, enc.std, enc.name)
    return lambda images: embed(enc, images)


@dataclass
class Embedder:
    """A trained embedder: `embed(uint8 images) -> L2-normalised float array [N, dim]`."""

    head: nn.Module
    arch: str
    args: dict
    trunk: str | None
    size: int
    data: str
    classes: tuple[str, ...]
    _trunk_fn: object = None

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """What the head reads for uint8 images of the embedder's size: trunk features or pixels."""
        if self.trunk is None:
            return pixels(images)
        if self._trunk_fn is None:
            self._trunk_fn = trunk_embedder(self.trunk, self.size)
        return torch.from_numpy(np.asarray(self._trunk_fn(images), dtype=np.float32))

    @torch.no_grad()
    def embed_inputs(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.head.eval()
        out = torch.cat([self.head(x[i:i + batch]) for i in range(0, len(x), batch)])
        return nn.functional.normalize(out, dim=1)

    def embed(self, images: torch.Tensor) -> np.ndarray:
        return self.embed_inputs(self.inputs(images)).numpy()


def save_embedder(path: str | os.PathLike, emb: Embedder, source: dict) -> None:
    save_checkpoint({"kind": FORMAT, "model": emb.head.state_dict(), "arch": emb.arch, "args": emb.args,
                     "trunk": emb.trunk, "size": emb.size, "data": emb.data, "classes": list(emb.classes),
                     "source": source}, path)


def load_embedder(path: str | os.PathLike) -> Embedder:
    ckpt = read_torch_file(path, "embedder")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != FORMAT:
        raise UserError(f"{path}: not an embedder of `vislearn pretrain metric` (RUN/embedder.pt)")
    if ckpt.get("arch") not in HEADS:
        raise UserError(f"{path}: unknown head architecture {ckpt.get('arch')!r}")
    head = build_head(ckpt["arch"], dict(ckpt["args"]))
    load_state(head, ckpt["model"], path)
    return Embedder(head.eval(), ckpt["arch"], dict(ckpt["args"]), ckpt["trunk"], int(ckpt["size"]), ckpt["data"],
                    tuple(ckpt["classes"]))
