"""The paper's simulated interactive segmentation (App. A, "Training algorithm"), the loop SAM is trained in.

Per ground-truth mask: the first prompt is, with equal probability, one foreground point drawn uniformly from the
mask or the mask's box with noise (per coordinate, std = 10% of the box side, at most `box_noise_max` px: the
paper's 20 px at 1024 px, scaled to the model's input). Each later round adds one point drawn uniformly from the
error region of the previous prediction (positive in a false negative, negative in a false positive) and gives
the previous round's unthresholded low-resolution logits as the mask prompt. 11 rounds in all: the first prompt,
8 sampled points, and 2 rounds with no new point (one at a random round, one at the end) in which the model must
refine from its own mask prompt. The ambiguity-aware 3-mask output is used only when the prompt is a single point
(the first round of a point prompt); then the mask with the highest predicted IoU is the one passed on (as the
paper says), while the loss back-propagates the lowest-loss mask (`losses.sam_loss`). Predictions passed between
rounds are detached; every round's loss counts (their mean is returned). A point drawn from an empty error region
(a perfect mask) is a padding point (label -1), which the prompt encoder ignores.

The image embeddings are computed once per image by the caller; a call here decodes all masks of the batch in
at most two decoder calls per round (box prompts and point prompts have different token counts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .losses import DICE_WEIGHT, FOCAL_WEIGHT, IOU_WEIGHT, sam_loss

LOSS_WEIGHTS = (FOCAL_WEIGHT, DICE_WEIGHT, IOU_WEIGHT)  # the paper's focal : dice : IoU-MSE
from .masks import masks_to_boxes_xyxy


def round_plan(rounds: int, generator: torch.Generator) -> list[bool]:
    """Which rounds after the first add a sampled point: [round 1, ..., round R-1]. The last adds none, and with
    R >= 5 one more drawn among the others adds none (the paper's 11 = 1 + 8 + 2; R = 3: 1 + 1 + 1)."""
    if rounds <= 1:
        return []
    plan = [True] * (rounds - 1)
    plan[-1] = False
    if rounds >= 5:
        plan[int(torch.randint(rounds - 2, (1,), generator=generator))] = False
    return plan


def sample_in(region: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One pixel per mask drawn uniformly from `region` bool [N, H, W] -> (x, y) long [N, 2] and whether the
    region had any pixel [N] (an empty region gives (0, 0))."""
    n, h, w = region.shape
    flat = region.flatten(1).float()
    has = flat.sum(1) > 0
    weights = torch.where(has[:, None], flat, torch.ones_like(flat))
    idx = torch.multinomial(weights, 1, generator=generator)[:, 0] if n else torch.zeros(0, dtype=torch.long)
    return torch.stack([idx % w, idx // w], 1), has


def noisy_boxes(masks: torch.Tensor, input_sizes: torch.Tensor, generator: torch.Generator,
                noise_frac: float = 0.1, noise_max: float = 20.0) -> torch.Tensor:
    """The masks' boxes (XYXY, inclusive) with Gaussian noise per coordinate (std = noise_frac x the side, at most
    noise_max px), kept inside the image (`input_sizes` [N, 2] as (h, w)) and ordered."""
    boxes = masks_to_boxes_xyxy(masks)
    side = torch.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], 1).repeat(1, 2)
    std = (noise_frac * side).clamp(max=noise_max)
    noisy = boxes + std * torch.randn(boxes.shape, generator=generator)
    hw = input_sizes.float()
    limit = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], 1) - 1
    noisy = torch.minimum(noisy.clamp(min=0), limit)
    x0, x1 = torch.minimum(noisy[:, 0], noisy[:, 2]), torch.maximum(noisy[:, 0], noisy[:, 2])
    y0, y1 = torch.minimum(noisy[:, 1], noisy[:, 3]), torch.maximum(noisy[:, 1], noisy[:, 3])
    return torch.stack([x0, y0, x1, y1], 1)


def error_points(pred: torch.Tensor, gt: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One corrective click per mask, uniform over the error region of `pred` vs `gt` (bool [N, H, W]): label 1 in
    a false negative, 0 in a false positive, -1 (padding) where there is no error. -> (x, y) [N, 2], labels [N]."""
    xy, has = sample_in(pred ^ gt, generator)
    rows = torch.arange(len(gt))
    positive = gt[rows, xy[:, 1], xy[:, 0]]
    labels = torch.where(has, positive.long(), torch.full_like(positive, -1, dtype=torch.long))
    return xy, labels


@dataclass
class Interaction:
    """The result of one simulated interaction over a batch of masks."""

    loss: torch.Tensor  # mean over rounds of the per-round loss (mean over masks)
    rounds: list[dict] = field(default_factory=list)  # per round: focal, dice, iou_mse, iou (means over masks)
    prompts: list[dict] = field(default_factory=list)  # per round with keep_prompts: what was given, the prediction

    def parts(self) -> dict:
        keys = ("focal", "dice", "iou_mse", "iou")
        out = {k: sum(r[k] for r in self.rounds) / len(self.rounds) for k in keys}
        out["iou_first"] = self.rounds[0]["iou"]
        out["iou_last"] = self.rounds[-1]["iou"]
        return out


def valid_area(input_sizes: torch.Tensor, size: int) -> torch.Tensor:
    """bool [N, size, size]: the image (not the padding) of each mask's image."""
    ys = torch.arange(size)
    rows = ys[None, :] < input_sizes[:, :1]
    cols = ys[None, :] < input_sizes[:, 1:]
    return rows[:, :, None] & cols[:, None, :]


def simulate(model, embeddings: torch.Tensor, image_index: torch.Tensor, masks: torch.Tensor, low: torch.Tensor,
             input_sizes: torch.Tensor, generator: torch.Generator, rounds: int = 11, box_noise_max: float = 20.0,
             keep_prompts: bool = False, loss_weights: tuple[float, float, float] = LOSS_WEIGHTS,
             all_masks: bool = False) -> Interaction:
    """Run the interaction for every mask of a batch and add up the loss.

    `embeddings` [B, C, h, w] (one per image, with grad when the encoder trains); `image_index` long [N]: the image
    of each mask; `masks` bool [N, S, S] at the input size (padded); `low` bool [N, s, s] at the logits' size;
    `input_sizes` long [N, 2]: (h, w) of each mask's image before padding."""
    n, size = len(masks), masks.shape[-1]
    inside = valid_area(input_sizes, size)
    use_box = torch.rand(n, generator=generator) < 0.5
    first_xy, _ = sample_in(masks, generator)
    boxes = noisy_boxes(masks, input_sizes, generator, noise_max=box_noise_max)
    coords = first_xy[:, None].float()  # [N, P, 2]
    labels = torch.ones(n, 1, dtype=torch.long)
    plan = [True] + round_plan(rounds, generator)
    mask_input, pred, total, out = None, masks, 0.0, Interaction(loss=torch.zeros(()))  # pred: set by round 0
    groups = [g for g in (torch.nonzero(use_box).flatten(), torch.nonzero(~use_box).flatten()) if len(g)]
    for r, new_point in enumerate(plan):
        if r > 0 and new_point:
            xy, lab = error_points(pred, masks, generator)
            coords = torch.cat([coords, xy[:, None].float()], 1)
            labels = torch.cat([labels, lab[:, None]], 1)
        logits_all = torch.zeros(n, 1, *low.shape[-2:])
        round_loss, parts = 0.0, {"focal": 0.0, "dice": 0.0, "iou_mse": 0.0, "iou": 0.0}
        given = {"round": r, "new_point": new_point and r > 0, "groups": []}
        for g in groups:
            boxed = bool(use_box[g[0]])
            # box prompts carry the clicks of later rounds only (column 0, the first point, is not theirs)
            sl = slice(1, None) if boxed else slice(None)
            points = (coords[g][:, sl], labels[g][:, sl]) if coords[:, sl].shape[1] else None
            multimask = points is not None and not boxed and points[1].shape[1] == 1 and mask_input is None
            m_in = mask_input[g] if mask_input is not None else None
            logits, iou_pred = model.decode(embeddings[image_index[g]], points, boxes[g] if boxed else None, m_in,
                                            multimask_output=multimask)
            lp = sam_loss(logits, iou_pred, low[g], *loss_weights, all_masks=all_masks)
            round_loss = round_loss + lp.total * len(g) / n
            for k in parts:
                parts[k] += getattr(lp, k) * len(g) / n
            passed = iou_pred.detach().argmax(1) if multimask else torch.zeros(len(g), dtype=torch.long)
            logits_all[g] = logits.detach()[torch.arange(len(g)), passed][:, None]
            if keep_prompts:
                given["groups"].append({"index": g, "points": points, "boxes": boxes[g] if boxed else None,
                                        "mask_input": m_in, "multimask": multimask})
        total = total + round_loss
        out.rounds.append(parts)
        mask_input = logits_all
        pred = (F.interpolate(logits_all, size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0) & inside
        if keep_prompts:
            given.update(coords=coords.clone(), labels=labels.clone(), use_box=use_box, boxes=boxes, pred=pred,
                         logits=logits_all)
            out.prompts.append(given)
    out.loss = total / len(plan)
    return out
