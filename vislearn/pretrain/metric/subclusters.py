"""How many of a class's modes survive in an embedding: per coarse class, KMeans with k = the class's mode count
on its embeddings, clusters matched one-to-one to the true modes (Hungarian, on the overlap counts), and a mode is
KEPT when its matched cluster is mostly that mode (at least `PURITY` = 2/3 of the cluster's items are of it) and
holds most of it (at least `COVERAGE` = 1/2 of the mode's items). A class counts at least one surviving
sub-cluster: a class whose modes all merged into one blob is one cluster, the class itself. So separated modes
give k of k, a class collapsed to a point gives 1 of k. With the NMI between the clusters and the modes
(1: the clusters are the modes, 0: unrelated), averaged over the classes.
"""
from __future__ import annotations

import warnings

import numpy as np

PURITY = 2 / 3
COVERAGE = 1 / 2


def class_survival(emb: np.ndarray, modes: np.ndarray, seed: int = 0) -> tuple[int, int, float]:
    """(modes kept, modes, NMI) for the embeddings [N, D] of one class and each item's mode."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415
    from sklearn.metrics import normalized_mutual_info_score  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    names, true = np.unique(modes, return_inverse=True)
    k = len(names)
    if k < 2:
        return k, k, 1.0
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a collapsed class has fewer distinct points than k
        found = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(np.asarray(emb, np.float64))
    overlap = np.zeros((k, k), np.int64)  # [mode, cluster]
    np.add.at(overlap, (true, found), 1)
    rows, cols = linear_sum_assignment(-overlap)
    cluster_size, mode_size = overlap.sum(0), overlap.sum(1)
    kept = sum(1 for m, c in zip(rows, cols)
               if overlap[m, c] >= PURITY * max(cluster_size[c], 1) and overlap[m, c] >= COVERAGE * mode_size[m])
    return max(kept, 1), k, float(normalized_mutual_info_score(true, found))


def survival(emb: np.ndarray, labels: np.ndarray, modes: np.ndarray, seed: int = 0) -> dict:
    """Sub-cluster survival over the classes in `labels`: modes kept, modes, their ratio, the mean NMI and
    per-class values."""
    per_class = {}
    for c in np.unique(labels):
        m = labels == c
        per_class[int(c)] = class_survival(emb[m], modes[m], seed)
    kept = sum(v[0] for v in per_class.values())
    total = sum(v[1] for v in per_class.values())
    return {"kept": kept, "modes": total, "fraction": kept / total if total else float("nan"),
            "nmi": float(np.mean([v[2] for v in per_class.values()])),
            "per_class": {str(c): {"kept": v[0], "modes": v[1], "nmi": v[2]} for c, v in per_class.items()}}
