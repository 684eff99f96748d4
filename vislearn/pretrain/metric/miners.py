"""The nearest-positive rule as a pytorch-metric-learning miner.

pytorch-metric-learning's `BatchEasyHardMiner(pos_strategy=EASY, neg_strategy=ALL)` is exactly the rule: for
every anchor with a same-class sample in the batch, the EASY positive is the one at the smallest distance (the
largest similarity for an inverted distance such as cosine), the anchor itself excluded; the negatives are all
other-class samples. It returns pairs (a1, p, a2, n) with one positive per anchor; `TripletMarginLoss` and
`MarginLoss` turn them into the triplets (a, nearest p, every n) of that anchor (`convert_to_triplets`). So
`NearestPositiveMiner` only fixes those two strategies; `tests/pretrain/test_metric_miner.py` checks it against
a brute-force search. Without a miner ("all" positives) both losses use every (a, p, n) triplet of the batch:
the same negatives, every positive.
"""
from __future__ import annotations

from pytorch_metric_learning.miners import BatchEasyHardMiner

POSITIVES = ("nearest", "all")


class NearestPositiveMiner(BatchEasyHardMiner):
    """Each anchor's nearest same-class sample in the batch as its positive, all other-class samples as negatives
    (Levi et al., ICCV 2021)."""

    def __init__(self, **kwargs):
        super().__init__(pos_strategy=BatchEasyHardMiner.EASY, neg_strategy=BatchEasyHardMiner.ALL, **kwargs)


def make_miner(positives: str):
    """The miner for `--positives`: the rule, or None (the loss's own all-triplets)."""
    if positives not in POSITIVES:
        raise ValueError(positives)
    return NearestPositiveMiner() if positives == "nearest" else None
