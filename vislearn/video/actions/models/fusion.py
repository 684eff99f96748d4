"""Combining a scene (pixel) model with a STIN (box) model.

Two ways, as in the paper's tables:
- `FusionModel`: feature-level fusion, concat(scene feature, STIN feature) -> MLP classifier,
  trained jointly or with a stream frozen (e.g. the scene stream loaded from its checkpoint).
- `ScoreEnsemble` / `fuse_scores`: separately trained models, weighted mean of softmax scores
  (the "I3D, STIN+OIE+NL" rows). `fuse_scores` is the one score fusion of the project: the ensemble
  module, `video.actions.evaluate --ensemble` and `video.actions.infer` with several checkpoints use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vislearn.common.errors import UserError
from vislearn.common.freeze import freeze

from vislearn.backbones.loading import load_backbone_weights


class FusionModel(nn.Module):
    """concat(scene.features, stin.features) -> Linear-ReLU-Linear(512)-ReLU-Linear.

    The classifier has the official fusion head's shape (hidden = the STIN feature size).
    A frozen stream runs under no_grad in eval mode, whatever mode the fusion model is in.
    """

    needs_frames = True
    needs_boxes = True

    def __init__(
        self,
        scene: nn.Module,
        stin: nn.Module,
        num_classes: int,
        freeze_scene: bool = False,
        freeze_stin: bool = False,
        hidden_dim: int | None = None,
    ):
        super().__init__()
        self.scene, self.stin = scene, stin
        self.freeze_scene, self.freeze_stin = freeze_scene, freeze_stin
        self.num_classes = num_classes
        self.feature_dim = scene.feature_dim + stin.feature_dim
        hidden = hidden_dim or stin.feature_dim
        self.classifier = nn.Sequential(
            nn.Linear(self.feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
        self.needs_rgb_boxes = any(getattr(m, "needs_rgb_boxes", False) for m in (scene, stin))
        for stream, frozen in ((scene, freeze_scene), (stin, freeze_stin)):
            if frozen:
                freeze(stream)

    @staticmethod
    def _features(stream: nn.Module, frozen: bool, batch: dict) -> torch.Tensor:
        if frozen:
            with torch.no_grad():
                return stream.features(batch)
        return stream.features(batch)

    def features(self, batch: dict) -> torch.Tensor:
        return torch.cat(
            [
                self._features(self.scene, self.freeze_scene, batch),
                self._features(self.stin, self.freeze_stin, batch),
            ],
            dim=1,
        )

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))


def fuse_scores(scores: Sequence, weights: Sequence[float] | None = None, *,
                probabilities: bool = False) -> torch.Tensor:
    """Weighted mean of the softmax scores of several models: [B,K] probabilities.

    `scores`: each model's logits [B,K] (tensors or arrays), or with `probabilities=True` its softmax
    scores already (e.g. the `scores.npz` of a run; their dtype is kept). Weights are normalised to sum
    to 1 (default: equal weights).
    """
    if len(scores) == 0:
        raise UserError("score fusion: no scores given")
    weights = [1.0] * len(scores) if weights is None else [float(w) for w in weights]
    if len(weights) != len(scores):
        raise UserError(f"score fusion: {len(scores)} score sets but {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"score fusion: weights must be >= 0 with a positive sum, got {weights}")
    total = sum(weights)
    probs = [torch.as_tensor(x) if probabilities else torch.as_tensor(x).float().softmax(-1) for x in scores]
    return sum(w / total * p for w, p in zip(weights, probs))


class ScoreEnsemble(nn.Module):
    """Late fusion of trained models. forward returns log fused probabilities, usable as
    logits (softmax of them gives back the fused scores; argmax is the fused prediction)."""

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        self.models = nn.ModuleList(models)
        self.weights = list(weights) if weights is not None else [1.0] * len(models)
        fuse_scores([torch.zeros(1, 1)] * len(self.models), self.weights)  # validate early
        self.needs_frames = any(getattr(m, "needs_frames", False) for m in models)
        self.needs_boxes = any(getattr(m, "needs_boxes", False) for m in models)
        self.needs_rgb_boxes = any(getattr(m, "needs_rgb_boxes", False) for m in models)

    def forward(self, batch: dict) -> torch.Tensor:
        probs = fuse_scores([m(batch) for m in self.models], self.weights)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


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
    from . import SCENE_MODELS, STIN_MODELS, create_model  # the name table imports this module

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
