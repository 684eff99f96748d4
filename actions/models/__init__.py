"""Models by name: `MODELS` is a plain dict of builder functions, `create_model` calls one.

Every model maps a batch dict to logits [B, num_classes] and says what it reads:
`needs_frames` (decode video) and `needs_boxes`. Models that can feed fusion also have
`features(batch)` -> [B, feature_dim] and `feature_dim`.
"""

from __future__ import annotations

import inspect

from torch import nn

from . import scene as _scene
from . import stin as _stin
from .fusion import FusionModel, ScoreEnsemble, fuse_scores
from .i3d import I3DResNet50, i3d_r50
from .mobilenet import MobileNetV2Video, i3d_mobilenet_v2, tsm_mobilenet_v2
from .scene import SceneModel, load_backbone_weights, read_state_dict
from .stin import STIN, stin_official, stin_preset
from .strg import STRG

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
    "tsm_mobilenet_v2": tsm_mobilenet_v2,
    "i3d_mobilenet_v2": i3d_mobilenet_v2,
}


def fusion(
    num_classes: int,
    *,
    scene: str = "i3d_r50",
    stin: str = "stin_oie",
    scene_kwargs: dict | None = None,
    stin_kwargs: dict | None = None,
    scene_checkpoint: str | None = None,
    stin_checkpoint: str | None = None,
    freeze_scene: bool = False,
    freeze_stin: bool = False,
    hidden_dim: int | None = None,
) -> FusionModel:
    """Scene model (or STRG) + STIN, concatenated features -> MLP.

    `scene_checkpoint` / `stin_checkpoint`: a local checkpoint of the whole stream model (e.g.
    written by the trainer); its classifier is not needed and not loaded.
    """
    if scene not in SCENE_MODELS and scene != "strg":
        raise ValueError(f"fusion: unknown scene model {scene!r}; valid: {', '.join(SCENE_MODELS)}, strg")
    if stin not in STIN_MODELS:
        raise ValueError(f"fusion: unknown STIN model {stin!r}; valid: {', '.join(STIN_MODELS)}")
    scene_model = create_model(scene, num_classes, **(scene_kwargs or {}))
    stin_model = create_model(stin, num_classes, **(stin_kwargs or {}))
    for model, path in ((scene_model, scene_checkpoint), (stin_model, stin_checkpoint)):
        if path is not None:
            load_backbone_weights(model, path, ignore_prefixes=("classifier.",))
    return FusionModel(scene_model, stin_model, num_classes, freeze_scene, freeze_stin, hidden_dim)


def strg(
    num_classes: int,
    *,
    scene: str = "i3d_r50",
    scene_kwargs: dict | None = None,
    scene_checkpoint: str | None = None,
    node_dim: int = 512,
    graph_layers: int = 3,
    roi_size: int = 7,
    similarity_dim: int | None = None,
    dropout: float = 0.5,
) -> STRG:
    """STRG over the trunk of scene model `scene` (I3D ResNet-50 in the paper).

    `scene_checkpoint`: a local checkpoint of a trained scene model (e.g. the trainer's best.pt),
    whose trunk and feature projection initialise STRG's; its classifier is not loaded.
    """
    if scene not in SCENE_MODELS:
        raise ValueError(f"strg: unknown scene model {scene!r}; valid: {', '.join(SCENE_MODELS)}")
    scene_model = create_model(scene, num_classes, **(scene_kwargs or {}))
    if scene_checkpoint is not None:
        load_backbone_weights(scene_model, scene_checkpoint, ignore_prefixes=("classifier.",))
    return STRG(scene_model, num_classes, node_dim=node_dim, graph_layers=graph_layers, roi_size=roi_size,
                similarity_dim=similarity_dim, dropout=dropout)


MODELS = {**STIN_MODELS, **SCENE_MODELS, "strg": strg, "fusion": fusion}


def model_kwargs(name: str) -> list[str]:
    """The keyword options a model builder accepts (besides num_classes)."""
    params = inspect.signature(MODELS[name]).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.name != "num_classes"]


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
