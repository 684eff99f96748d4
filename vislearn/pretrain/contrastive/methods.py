"""The three learners on one core (`core.py`): what each adds to MoCo-v2 is its loss.

- **moco** (MoCo-v2): a query view and a key view of each image; InfoNCE of the query's projection against its
  key's, with a queue of past keys as negatives.
- **resim** (ReSim): MoCo-v2's global loss plus, on C4 and C3, the same InfoNCE between windows of the query view
  and the same image pixels in the key view (`regions.py`), each pooled from its view's map with `roi_align` and
  projected by a level's own head; the negatives are past pooled key windows (one queue per level). Equal weights.
- **looc** (LooC): a query view and n+1 key views for n augmentations. Key 0 draws every augmentation afresh; key
  i shares augmentation i with the query and draws the rest afresh. One head per embedding space: the general
  space Z0 (positives: every key; invariant to all) and one space per augmentation, Z_i, whose positive is key i
  and whose other keys are negatives, so Z_i keeps what augmentation i changes (`looc_pairs`). Mean over spaces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vislearn.backbones.dense import MultiScaleEncoder

from .core import ProjectionHead, Queue, info_nce, momentum_copy, momentum_update, shuffled_forward
from .regions import pool_regions, region_pairs, scaled_windows

METHODS = ("moco", "resim", "looc")
GENERAL = "all"  # the all-invariant embedding space (MoCo's only one)
REGION_LEVELS = ("c4", "c3")


@dataclass
class LearnerSpec:
    method: str
    dim: int = 128
    hidden: int = 512
    queue: int = 1024
    temperature: float = 0.2
    momentum: float = 0.9
    key_chunks: int = 2
    spaces: tuple[str, ...] = ()  # looc: the augmentations that get a space of their own
    max_windows: int = 8  # resim: windows per image and level at most


def looc_pairs(spaces: tuple[str, ...]) -> dict[str, tuple[list[int], list[int]]]:
    """space -> (indices of its positive keys, indices of keys that are its negatives). Key 0 shares nothing with
    the query; key i+1 shares augmentation spaces[i]."""
    keys = list(range(len(spaces) + 1))
    pairs = {GENERAL: (keys, [])}
    for i, name in enumerate(spaces):
        pairs[name] = ([i + 1], [j for j in keys if j != i + 1])
    return pairs


class ContrastiveLearner(nn.Module):
    """The query encoder and heads, their momentum copies, and the queues."""

    def __init__(self, encoder: MultiScaleEncoder, spec: LearnerSpec, generator: torch.Generator):
        super().__init__()
        self.spec = spec
        self.encoder = encoder
        spaces = [GENERAL] + (list(spec.spaces) if spec.method == "looc" else [])
        self.heads = nn.ModuleDict({s: ProjectionHead(encoder.num_features, spec.hidden, spec.dim) for s in spaces})
        levels = REGION_LEVELS if spec.method == "resim" else ()
        self.region_heads = nn.ModuleDict({lv: ProjectionHead(encoder.map_channels[lv], spec.hidden, spec.dim)
                                           for lv in levels})
        self.key_encoder = momentum_copy(encoder)
        self.key_heads = momentum_copy(self.heads)
        self.key_region_heads = momentum_copy(self.region_heads)
        self.queues = nn.ModuleDict({name: Queue(spec.queue, spec.dim, generator)
                                     for name in spaces + [f"region_{lv}" for lv in levels]})

    def query_and_key_modules(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.key_encoder), (self.heads, self.key_heads),
                (self.region_heads, self.key_region_heads)]

    def update_keys(self) -> None:
        for q, k in self.query_and_key_modules():
            momentum_update(q, k, self.spec.momentum)

    def trainable(self) -> list[nn.Module]:
        return [self.encoder, self.heads, self.region_heads]

    def negatives(self, name: str) -> torch.Tensor:
        return self.queues[name].keys.clone()  # the queue changes in place after the step; autograd keeps a copy

    @torch.no_grad()
    def space_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each embedding space's normalised projection of images x, and the pooled backbone feature."""
        pooled = self.encoder(x)
        return {"backbone": pooled, **{s: F.normalize(h(pooled), dim=1) for s, h in self.heads.items()}}


def _key_pass(learner: ContrastiveLearner, x: torch.Tensor, generator: torch.Generator, spaces: list[str],
              maps: bool = False) -> dict[str, torch.Tensor]:
    """The key network (encoder and the heads of `spaces`, as MoCo's whole key encoder) on shuffled parts of x:
    {space: normalised key projections} and, with `maps`, the key feature maps."""
    def fn(part):
        feats = learner.key_encoder.features(part) if maps else {"pooled": learner.key_encoder(part)}
        return {**{s: F.normalize(learner.key_heads[s](feats["pooled"]), dim=1) for s in spaces},
                **({lv: feats[lv] for lv in learner.region_heads} if maps else {})}
    return shuffled_forward(fn, x, learner.spec.key_chunks, generator)


def moco_loss(learner: ContrastiveLearner, xq: torch.Tensor, xk: torch.Tensor, generator: torch.Generator
              ) -> tuple[torch.Tensor, dict]:
    spec = learner.spec
    q = F.normalize(learner.heads[GENERAL](learner.encoder(xq)), dim=1)
    with torch.no_grad():
        k = _key_pass(learner, xk, generator, [GENERAL])[GENERAL]
    loss, acc = info_nce(q, k, learner.negatives(GENERAL), spec.temperature)
    learner.queues[GENERAL].push(k)
    return loss, {"loss_global": float(loss.detach()), "acc_global": float(acc)}


def resim_loss(learner: ContrastiveLearner, xq: torch.Tensor, xk: torch.Tensor, views_q, views_k, size: int,
               rng: np.random.Generator, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    spec = learner.spec
    fq = learner.encoder.features(xq)
    q = F.normalize(learner.heads[GENERAL](fq["pooled"]), dim=1)
    with torch.no_grad():
        fk = _key_pass(learner, xk, generator, [GENERAL], maps=True)
        k = fk[GENERAL]
    loss, acc = info_nce(q, k, learner.negatives(GENERAL), spec.temperature)
    learner.queues[GENERAL].push(k)
    stats = {"loss_global": float(loss.detach()), "acc_global": float(acc)}
    for level, (window, stride) in scaled_windows(size).items():
        bq, bk = region_pairs(views_q, views_k, size, window, stride, spec.max_windows, rng)
        stats[f"windows_{level}"] = len(bq)
        if len(bq) == 0:
            continue
        rq = F.normalize(learner.region_heads[level](pool_regions(fq[level], bq, size)), dim=1)
        with torch.no_grad():
            rk = F.normalize(learner.key_region_heads[level](pool_regions(fk[level], bk, size)), dim=1)
        part, part_acc = info_nce(rq, rk, learner.negatives(f"region_{level}"), spec.temperature)
        learner.queues[f"region_{level}"].push(rk)
        loss = loss + part
        stats[f"loss_{level}"], stats[f"acc_{level}"] = float(part.detach()), float(part_acc)
    return loss, stats


def looc_loss(learner: ContrastiveLearner, xq: torch.Tensor, xkeys: list[torch.Tensor],
              generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """xkeys[j]: key view j of every image (see `looc_pairs`)."""
    spec = learner.spec
    pooled = learner.encoder(xq)
    b = len(xq)
    pairs = looc_pairs(spec.spaces)
    with torch.no_grad():
        keys = _key_pass(learner, torch.cat(xkeys), generator, list(pairs))
    total, stats = 0.0, {}
    for space, (positives, negatives) in pairs.items():
        q = F.normalize(learner.heads[space](pooled), dim=1)
        k = keys[space].view(len(xkeys), b, -1)  # [n+1, B, D]
        extra = k[negatives].transpose(0, 1) if negatives else None  # [B, M, D]
        queue = learner.negatives(space)
        parts = [info_nce(q, k[j], queue, spec.temperature, extra) for j in positives]
        loss = sum(p[0] for p in parts) / len(parts)
        learner.queues[space].push(k[positives[0]])
        total = total + loss
        stats[f"loss_{space}"] = float(loss.detach())
        stats[f"acc_{space}"] = float(sum(p[1] for p in parts) / len(parts))
    return total / len(pairs), stats
