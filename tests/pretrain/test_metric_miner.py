"""The nearest-positive miner picks, for every anchor, its nearest same-class sample in the batch (brute force),
all other-class samples as negatives, and the losses see exactly the triplets (a, nearest p, every n)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from vislearn.pretrain.metric.miners import NearestPositiveMiner, make_miner

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(emb: torch.Tensor, labels: torch.Tensor) -> dict[int, int]:
    """anchor -> its nearest same-class sample (itself excluded), by looping over every pair."""
    x = torch.nn.functional.normalize(emb, dim=1).double()
    best = {}
    for a in range(len(x)):
        cands = [(float(torch.dist(x[a], x[p])), p) for p in range(len(x)) if p != a and labels[p] == labels[a]]
        if cands:
            dists = sorted(cands)
            assert len(dists) < 2 or dists[1][0] - dists[0][0] > 1e-6  # no ties in the test data
            best[a] = dists[0][1]
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_positive_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(40, 8, generator=g)
    labels = torch.randint(0, 4, (40,), generator=g)
    labels[0], labels[1] = 9, 5  # a lone sample of class 9: no positive, so not an anchor
    expected = brute_force(emb, labels)
    a1, p, a2, n = NearestPositiveMiner()(emb, labels)
    assert dict(zip(a1.tolist(), p.tolist())) == expected
    assert len(a1) == len(expected) and 0 not in a1.tolist()
    # negatives: every pair of different classes
    neg = set(zip(a2.tolist(), n.tolist()))
    assert neg == {(i, j) for i in range(40) for j in range(40) if labels[i] != labels[j]}
    # what TripletMarginLoss / MarginLoss compute on: (a, nearest p, each n)
    ta, tp, tn = lmu.convert_to_triplets((a1, p, a2, n), labels)
    triplets = set(zip(ta.tolist(), tp.tolist(), tn.tolist()))
    assert triplets == {(a, expected[a], j) for a in expected for j in range(40) if labels[j] != labels[a]}


def test_the_rule_changes_the_loss_and_all_is_no_miner():
    from pytorch_metric_learning.losses import TripletMarginLoss

    g = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(24, 4, generator=g), torch.arange(24) % 3
    loss = TripletMarginLoss(margin=0.2)
    assert make_miner("all") is None
    nearest = loss(emb, labels, make_miner("nearest")(emb, labels))
    assert nearest < loss(emb, labels)  # the nearest positive is the easiest: a smaller loss than all positives
