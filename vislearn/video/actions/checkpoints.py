"""Rebuilding from a training checkpoint: the checkpoint alone gives the model, its classes and its run's config.

A checkpoint of `video.actions.train` holds, besides the weights, `model_name` and `model_args` (the builder's
arguments), `class_names` and `config`. Some builder arguments say where the initial weights came from,
not what the network is (`pretrained`, `backbone_weights`, `scene_checkpoint`, `stin_checkpoint`, also inside the
`*_kwargs` of a fusion model): as with torchvision's `get_model(name, weights=...)`, they are kept apart
from the architecture. Rebuilding leaves them out (the checkpoint's own weights replace whatever they
loaded, and the files need not exist any more), and a resumed run may name other paths for them.
"""
from __future__ import annotations

import torch
from torch import nn

from vislearn.common.checkpoint import load_state

from .config import TrainConfig, apply
from .models import create_model


def is_weight_source(key: str) -> bool:
    """A builder argument naming the file (or known weight name, `vislearn.common.weights`) initial weights are read from."""
    return key == "pretrained" or key.endswith("_checkpoint") or key.endswith("_weights")


def without_weight_sources(model_args: dict) -> dict:
    """The builder arguments that define the network (nested `*_kwargs` dicts included)."""
    return {k: without_weight_sources(v) if isinstance(v, dict) else v for k, v in model_args.items()
            if not is_weight_source(k)}


def weight_files(model_args: dict) -> list[str]:
    """The files the builder arguments read initial weights from (nested `*_kwargs` dicts included)."""
    out = []
    for k, v in model_args.items():
        if isinstance(v, dict):
            out += weight_files(v)
        elif is_weight_source(k) and isinstance(v, str) and v:
            out.append(v)
    return out


def model_from_checkpoint(ckpt: dict, device: torch.device | str = "cpu", source: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was trained as and load its weights (no other file is read)."""
    args = without_weight_sources(dict(ckpt.get("model_args", {})))
    model = create_model(ckpt["model_name"], len(ckpt["class_names"]), **args)
    load_state(model, ckpt["model"], source)
    return model.to(device).eval()


def config_of(ckpt: dict, overrides: dict) -> TrainConfig:
    """The run's config as saved in the checkpoint, with `overrides` (None values ignored) on top."""
    cfg = TrainConfig()
    known = {k: v for k, v in ckpt.get("config", {}).items() if k in TrainConfig.__dataclass_fields__}
    if known.get("rgb_sampler") == "official":  # the strided sampler's earlier name
        known["rgb_sampler"] = "strided"
    apply(cfg, known, "checkpoint config")
    apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
    return cfg
