"""Accuracy figures from score matrices: top-k, per-class accuracy, confusion matrix."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest scores (k clipped to the class count)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-1 accuracy per class (NaN for classes with no example)."""
    pred = scores.argmax(1)
    acc = np.full(num_classes, np.nan)
    for c in range(num_classes):
        sel = labels == c
        if sel.any():
            acc[c] = float((pred[sel] == c).mean())
    return acc


def summarize(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    k = len(class_names)
    per_class = per_class_accuracy(scores, labels, k)
    return {
        "videos": int(len(labels)),
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"),
        "per_class": {name: (None if np.isnan(a) else float(a)) for name, a in zip(class_names, per_class)},
        "confusion": confusion_matrix(labels, scores.argmax(1), labels=list(range(k))).tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
