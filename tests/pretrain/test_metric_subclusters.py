"""The sub-cluster survival measure on synthetic embeddings: separated modes are all kept, a class collapsed to
a point keeps one, and merged modes among separated ones are counted as lost."""
from __future__ import annotations

import numpy as np

from vislearn.pretrain.metric.subclusters import survival


def blobs(centres: np.ndarray, n: int, spread: float, rng) -> np.ndarray:
    return np.concatenate([c + spread * rng.normal(size=(n, centres.shape[1])) for c in centres])


def synthetic(spread_modes: float, rng, modes_per_class=(2, 3, 4), n=30, dim=16):
    embs, labels, modes = [], [], []
    m0 = 0
    for c, k in enumerate(modes_per_class):
        centre = 10.0 * rng.normal(size=dim)
        centres = centre + spread_modes * rng.normal(size=(k, dim))
        embs.append(blobs(centres, n, 0.1, rng))
        labels += [c] * (k * n)
        modes += [m0 + i for i in range(k) for _ in range(n)]
        m0 += k
    return np.concatenate(embs), np.array(labels), np.array(modes)


def test_separated_modes_are_all_kept():
    emb, labels, modes = synthetic(5.0, np.random.default_rng(0))
    s = survival(emb, labels, modes)
    assert (s["kept"], s["modes"]) == (9, 9) and s["fraction"] == 1.0 and s["nmi"] > 0.99


def test_a_collapsed_class_keeps_one_mode():
    rng = np.random.default_rng(1)
    emb, labels, modes = synthetic(0.0, rng)  # every mode at the class's centre
    s = survival(emb, labels, modes)
    assert [v["kept"] for v in s["per_class"].values()] == [1, 1, 1] and s["nmi"] < 0.2
    emb[:] = np.repeat(rng.normal(size=(3, 16)), [60, 90, 120], axis=0)  # exactly one point per class
    s = survival(emb, labels, modes)
    assert [v["kept"] for v in s["per_class"].values()] == [1, 1, 1]


def test_two_merged_modes_of_four_are_lost():
    rng = np.random.default_rng(2)
    emb, labels, modes = synthetic(5.0, rng, modes_per_class=(4,), n=40)
    emb[modes == 1] = emb[modes == 0] + 0.01 * rng.normal(size=(40, 16))  # modes 0 and 1 in one blob
    s = survival(emb, labels, modes)
    assert s["kept"] == 2 and s["modes"] == 4
