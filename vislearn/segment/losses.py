"""SAM's training loss (paper, App. A): focal : dice = 20 : 1 on the mask logits, plus the MSE between the
predicted IoU and the IoU of the thresholded prediction with the ground truth.

Resolution: the loss is taken on the decoder's low-resolution logits (4x the embedding grid: 64x64 for a 256 px
model) against the ground truth downsampled to that grid (area average, then >= 0.5). The logits are a linear
map of the decoder's features; upsampling them bilinearly adds no information the model controls, so the
low-resolution loss supervises the same thing at a sixteenth of the cost, and the next round's mask prompt is at
this resolution anyway. (Upsampled logits would mostly refine the boundary pixels' weight; at CPU scale the
cheaper loss buys more steps.)

Multiple masks: with the ambiguity-aware output (3 masks for one point) only the mask with the lowest
focal + dice loss back-propagates, while the IoU head is trained on all 3 (each against its own actual IoU).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FOCAL_WEIGHT, DICE_WEIGHT, IOU_WEIGHT = 20.0, 1.0, 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), mean over pixels: [..., H, W] -> [...]."""
    target = target.to(logits.dtype)
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) with the target, per mask: [..., H, W] -> [...]. `eps` keeps an empty
    target with an empty prediction at ~0."""
    p = logits.sigmoid().flatten(-2)
    t = target.to(logits.dtype).flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def mask_iou_of_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of (logits > 0) with the target, per mask: [..., H, W] -> [...]; 1 where both are empty."""
    pred, t = logits > 0, target.bool()
    inter = (pred & t).flatten(-2).sum(-1).float()
    union = (pred | t).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class LossParts:
    """One decoder call's loss (`total`, for backward) and its parts (means over masks, for the log)."""

    total: torch.Tensor
    focal: float
    dice: float
    iou_mse: float
    iou: float  # actual IoU of the chosen masks (a training-time accuracy)
    choice: torch.Tensor  # [N] index of the back-propagated mask among the outputs


def sam_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
             focal_weight: float = FOCAL_WEIGHT, dice_weight: float = DICE_WEIGHT,
             iou_weight: float = IOU_WEIGHT, all_masks: bool = False) -> LossParts:
    """`logits` [N, M, h, w] (M = 1 or 3), `iou_pred` [N, M], `target` bool [N, h, w] at the logits' resolution.

    Per mask: focal_weight * focal + dice_weight * dice; of the M outputs the lowest one counts (M = 1: the one).
    Plus iou_weight * MSE(iou_pred, actual IoU) over all M outputs. Means over the N masks.
    `all_masks`: every output back-propagates (their mean), not only the lowest: a warm-up for small models, whose
    untrained outputs make an empty mask the lowest loss, after which only that output ever trains."""
    if logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in size")
    t = target.unsqueeze(1).expand_as(logits)
    focal, dice = focal_loss(logits, t), dice_loss(logits, t)  # [N, M]
    mask_loss = focal_weight * focal + dice_weight * dice
    choice = mask_loss.detach().argmin(1)
    rows = torch.arange(len(logits), device=logits.device)
    with torch.no_grad():
        actual = mask_iou_of_logits(logits, t)
    iou_mse = F.mse_loss(iou_pred, actual, reduction="none").mean(1)  # [N]
    chosen = mask_loss.mean(1) if all_masks else mask_loss[rows, choice]
    total = (chosen + iou_weight * iou_mse).mean()
    focal, dice = focal.detach(), dice.detach()
    return LossParts(total, float(focal[rows, choice].mean()), float(dice[rows, choice].mean()),
                     float(iou_mse.detach().mean()), float(actual[rows, choice].mean()), choice)
