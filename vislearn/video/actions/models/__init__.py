"""Models by name: `MODELS` is a plain dict of builder functions, `create_model` calls one.

Every model maps a batch dict to logits [B, num_classes] and says what it reads:
`needs_frames` (decode video) and `needs_boxes`. Models that can feed fusion also have
`features(batch)` -> [B, feature_dim] and `feature_dim`.
"""

from __future__ import annotations

import functools
import inspect

from torch import nn

from vislearn.backbones.i3d_resnet import I3DResNet50
from vislearn.backbones.loading import load_backbone_weights
from vislearn.backbones.mobilenet import MobileNetV2Video
from vislearn.common.checkpoint import read_state_dict

from . import scene as _scene
from . import stin as _stin
from .fusion import FusionModel, ScoreEnsemble, fuse_scores, fusion
from .i3d import i3d_r50
from .mobilenet import i3d_mobilenet_v2, tsm_mobilenet_v2
from .scene import SceneModel
from .stin import STIN, stin_official, stin_preset
from .strg import STRG, strg

STIN_MODELS = {"stin": _stin.stin, "stin_oie": _stin.stin_oie, "stin_oie_nl": _stin.stin_oie_nl}
SCENE_MODELS = {
    "i3d_r50": i3d_r50,
    "r3d_18": _scene.r3d_18,
    "mc3_18": _scene.mc3_18,
    "r2plus1d_18": _scene.r2plus1d_18,
    "swin3d_t": _scene.swin3d_t,
    "s3d": _scene.s3d,
    "mvit_v1_b": _scene.mvit_v1_b,
    "small3d": _scene.small3d,
    "vit_scene": _scene.vit_scene,
    "tsm_mobilenet_v2": tsm_mobilenet_v2,
    "i3d_mobilenet_v2": i3d_mobilenet_v2,
}


MODELS = {**STIN_MODELS, **SCENE_MODELS, "strg": strg, "fusion": fusion}


def model_kwargs(name: str) -> list[str]:
    """The keyword options a model builder accepts (besides num_classes)."""
    builder = MODELS[name]
    fixed = set(builder.keywords) if isinstance(builder, functools.partial) else set()  # what the name says
    params = inspect.signature(builder).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.name != "num_classes" and p.name not in fixed]


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build model `name` with `num_classes` outputs; kwargs are the builder's options."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    accepted = model_kwargs(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r} got unknown option(s) {unknown}; it accepts: {', '.join(accepted)}")
    return MODELS[name](num_classes, **kwargs)


__all__ = [
    "MODELS",
    "STIN",
    "STRG",
    "FusionModel",
    "I3DResNet50",
    "MobileNetV2Video",
    "SceneModel",
    "ScoreEnsemble",
    "create_model",
    "fuse_scores",
    "load_backbone_weights",
    "model_kwargs",
    "read_state_dict",
    "stin_official",
    "stin_preset",
]
