"""The training step loop and the evaluation loop (the torchvision-reference shape, one screen each)."""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .distributed import DistInfo, all_gather_objects


class NonFiniteLoss(RuntimeError):
    """The loss became NaN/inf: training stops and the last good checkpoint is kept."""


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bfloat16 autocast: on CUDA when `enabled`; on the CPU only when `cpu` is set too (`amp_cpu=true`:
    about 1.7x faster STIN steps where the CPU has bfloat16 units, e.g. AVX512-BF16, not bit-identical)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and cpu and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(model: nn.Module, loader, optimizer, device: torch.device, epoch: int, *, dist: DistInfo,
                    clip_grad_norm: float = 0.0, amp: bool = False, amp_cpu: bool = False, label_smoothing: float = 0.0,
                    progress: bool = True, log_every: int = 0, log=print) -> dict:
    """One pass over `loader`. Returns the mean loss and top-1 over the global batches, and where the
    time went: samples/s (global samples over this process's wall time) and the seconds spent
    waiting for the loader (`train_data_seconds`; the rest of `train_seconds` is the model).

    Losses are averaged over all processes' samples, so the figures (and, with synchronized
    BatchNorm, the whole trajectory) match a single process with the same global batch.
    """
    model.train()
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    sums = torch.zeros(3, dtype=torch.float64)  # loss*n, correct, n
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not (progress and dist.is_main), unit="batch")
    t0 = time.perf_counter()
    data_seconds = 0.0  # time spent waiting for the loader, the rest is the model step
    t_wait = time.perf_counter()
    for step, batch in enumerate(bar):
        data_seconds += time.perf_counter() - t_wait
        batch = to_device(batch, device)
        with autocast(device, amp, amp_cpu):
            logits = model(batch)
            loss = criterion(logits.float(), batch["label"])
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss is {loss.item()} at epoch {epoch}, step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        n = batch["label"].shape[0]
        correct = (logits.argmax(1) == batch["label"]).sum().item()
        sums += torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if log_every and dist.is_main and (step + 1) % log_every == 0 and not progress:
            log(f"epoch {epoch} step {step + 1}/{len(loader)} loss {loss.item():.4f}")
        t_wait = time.perf_counter()
    seconds = time.perf_counter() - t0
    if dist.distributed:
        torch.distributed.all_reduce(sums)
    loss_sum, correct, n = sums.tolist()
    return {"train_loss": loss_sum / max(n, 1), "train_top1": correct / max(n, 1),
            "train_samples": int(n), "train_seconds": seconds, "train_samples_per_s": n / max(seconds, 1e-9),
            "train_data_seconds": data_seconds}


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device, *, dist: DistInfo, amp: bool = False,
            amp_cpu: bool = False, progress: bool = True, desc: str = "eval") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Scores for every video of `loader`'s dataset, views averaged (softmax), gathered on all ranks.

    Each process sees a disjoint shard of the samples (no padding, nothing dropped); samples that are
    several views of one video are averaged by `video_id`.
    """
    model.eval()
    scores: dict[str, list[np.ndarray]] = defaultdict(list)
    labels: dict[str, int] = {}
    for batch in tqdm(loader, desc=desc, leave=False, disable=not (progress and dist.is_main), unit="batch"):
        batch = to_device(batch, device)
        with autocast(device, amp, amp_cpu):
            logits = model(batch)
        prob = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for vid, p, y in zip(batch["video_id"], prob, batch["label"].cpu().tolist()):
            scores[vid].append(p)
            labels[vid] = y
    merged_scores: dict[str, list[np.ndarray]] = defaultdict(list)
    merged_labels: dict[str, int] = {}
    for part_scores, part_labels in all_gather_objects((dict(scores), labels)):
        for vid, ps in part_scores.items():
            merged_scores[vid].extend(ps)
        merged_labels.update(part_labels)
    ids = sorted(merged_scores)
    if not ids:
        return [], np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    out = np.stack([np.mean(merged_scores[v], axis=0) for v in ids])
    return ids, out, np.array([merged_labels[v] for v in ids], dtype=np.int64)


def mean_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Cross-entropy of averaged probabilities (for the held-out curve)."""
    if len(labels) == 0:
        return math.nan
    p = np.clip(scores[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())
