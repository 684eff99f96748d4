"""Recall@k for retrieval: the fraction of queries with an item of their own class among their k nearest
neighbours (the query itself left out), as metric-learning papers report it.

Built on pytorch-metric-learning's `AccuracyCalculator`: its `precision_at_1` is Recall@1, but it offers no
Recall@k for k > 1 (its other k-NN measures are precision-type: MAP@R, R-precision), so `RecallCalculator` adds
`recall_at_2/4/8` through the calculator's documented extension (a `calculate_*` method listed in
`requires_knn`). Its default k-NN search needs faiss, which is not installed here: the exact search on
torch (`CustomKNN(LpDistance())`) is used, fast for a few thousand items.
"""
from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

KS = (1, 2, 4, 8)


def _recall_at(knn_labels: torch.Tensor, query_labels: torch.Tensor, k: int) -> float:
    hit = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
    return float(hit.float().mean())


class RecallCalculator(AccuracyCalculator):
    """AccuracyCalculator with Recall@2/4/8 (Recall@1 is its `precision_at_1`)."""

    def calculate_recall_at_2(self, knn_labels, query_labels, **kwargs):
        return _recall_at(knn_labels, query_labels, 2)

    def calculate_recall_at_4(self, knn_labels, query_labels, **kwargs):
        return _recall_at(knn_labels, query_labels, 4)

    def calculate_recall_at_8(self, knn_labels, query_labels, **kwargs):
        return _recall_at(knn_labels, query_labels, 8)

    def requires_knn(self):
        return super().requires_knn() + ["recall_at_2", "recall_at_4", "recall_at_8"]


def recall_at_k(emb: np.ndarray, labels: np.ndarray, ks=KS) -> dict[str, float]:
    """{"recall@1": ..., "recall@2": ..., ...} of the embeddings [N, D] among themselves."""
    include = [("precision_at_1" if k == 1 else f"recall_at_{k}") for k in ks]
    calc = RecallCalculator(include=include, k=max(ks), device=torch.device("cpu"),
                            knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
    acc = calc.get_accuracy(torch.as_tensor(emb, dtype=torch.float32), torch.as_tensor(labels))
    return {f"recall@{k}": float(acc[name]) for k, name in zip(ks, include)}
