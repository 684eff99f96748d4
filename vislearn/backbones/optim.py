"""What every trainer of these encoders shares (the classifier of `train.py`, MAE in `vislearn.pretrain`): weight
decay on weight matrices only, and a per-step linear warm-up then cosine schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

# parameters without weight decay besides biases and norms: the tokens and the position embedding (timm, MAE)
NO_DECAY_SUFFIXES = ("pos_embed", "cls_token", "reg_token", "mask_token")


def param_groups(model: nn.Module, wd: float) -> list[dict]:
    """Weight decay on weight matrices and convolutions only (not biases, norms, tokens, position embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(NO_DECAY_SUFFIXES) else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: float,
                  steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per step: linear warm-up from ~0 over `warmup_epochs`, then cosine to 0 at the last step."""
    total = epochs * steps_per_epoch
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
