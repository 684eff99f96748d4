"""Rebuilding from a training checkpoint: the checkpoint alone gives the model, its classes and its run's config.

A checkpoint of `video.actions.train` holds, besides the weights, `model_name` and `model_args` (the builder's
arguments), `class_names` and `config`. Some builder arguments say where the initial weights came from,
not what the network is (`pretrained`, `backbone_weights`, `scene_checkpoint`, `stin_checkpoint`, also inside the
`*_kwargs` of a fusion model): as with torchvision's `get_model(name, weights=...)`, they are kept apart
from the architecture. Rebuilding leaves them out (the checkpoint's own weights replace whatever they
loaded, and the files need not exist any more), and a resumed run may name other paths for them.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from vislearn.common.checkpoint import load_checkpoint, load_state
from vislearn.common.errors import UserError

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


TAKES = "an action model's checkpoint (of `vislearn video train` or `vislearn video convert`)"


def other_kind(kind: object) -> str:
    """What a checkpoint of another `kind` is, and which commands take it."""
    from vislearn.video.tracking.detector import CHECKPOINT_KIND as DETECTOR  # only here: it loads torchvision

    if kind == DETECTOR:
        return ("a hand/object detector checkpoint (of `vislearn video tracking train-detector`); give it to "
                "`vislearn video tracking detect/track --detector` or `vislearn video infer --detector`")
    return f"a checkpoint of kind {str(kind)[:60]!r}, not an action model's"


def check_model_checkpoint(ckpt: dict, path: str | os.PathLike) -> dict:
    """`ckpt` when it is an action model's checkpoint whose entries have the right types (what
    `model_from_checkpoint` and `config_of` read); else one line saying what it is."""
    if "kind" in ckpt:
        raise UserError(f"{path}: {other_kind(ckpt['kind'])}; this command takes {TAKES}")
    for key in ("model_name", "class_names"):
        if key not in ckpt:
            raise UserError(f"{path}: no {key!r} in the checkpoint; this command takes {TAKES}")
    if not isinstance(ckpt["model_name"], str):
        raise UserError(f"{path}: 'model_name' must be text, got {type(ckpt['model_name']).__name__} (damaged checkpoint?)")
    names = ckpt["class_names"]
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: 'class_names' must be a non-empty list of class names, got {type(names).__name__}")
    for key in ("model_args", "config"):
        if not isinstance(ckpt.get(key, {}), dict):
            raise UserError(f"{path}: {key!r} must be a mapping, got {type(ckpt[key]).__name__} (damaged checkpoint?)")
    return ckpt


def load_model_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """An action model's checkpoint (`load_checkpoint` + `check_model_checkpoint`): a detector checkpoint, or
    one with entries of the wrong type, is one line naming the file, what it is and which command takes it."""
    return check_model_checkpoint(load_checkpoint(path, map_location), path)


def model_from_checkpoint(ckpt: dict, device: torch.device | str = "cpu", source: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was trained as and load its weights (no other file is read)."""
    args = without_weight_sources(dict(ckpt.get("model_args", {})))
    model = create_model(ckpt["model_name"], len(ckpt["class_names"]), **args)
    load_state(model, ckpt["model"], source)
    return model.to(device).eval()


def config_of(ckpt: dict, overrides: dict, source: str | os.PathLike = "checkpoint") -> TrainConfig:
    """The run's config as saved in the checkpoint (`source`: its file, named in errors), with `overrides`
    (None values ignored) on top. Every value is checked (`TrainConfig`'s settings)."""
    cfg = TrainConfig()
    saved = ckpt.get("config", {})
    if not isinstance(saved, dict):
        raise UserError(f"{source}: 'config' must be a mapping, got {type(saved).__name__} (damaged checkpoint?)")
    known = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
    if known.get("rgb_sampler") == "official":  # the strided sampler's earlier name
        known["rgb_sampler"] = "strided"
    apply(cfg, known, f"{source} (its config)")
    apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
    return cfg
