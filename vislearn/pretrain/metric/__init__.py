"""Metric learning without class collapse (Levi et al., ICCV 2021, "Rethinking preventing class-collapsing in
metric learning with margin-based losses").

The rule: each anchor takes its NEAREST same-class sample in the batch as its positive (negatives: all others).
With all positives, a margin-based loss pulls every sample of a class towards every other and a class made of
several modes shrinks to one point; with the nearest positive only, a mode need only stay close to itself.

Modules: `data` (image sets whose coarse classes are made of 2-4 modes: `objects-modes`, `digits-modes`; train /
held-out classes), `miners` (the nearest-positive miner: pytorch-metric-learning's `BatchEasyHardMiner` with easy
positives and all negatives is exactly the rule), `model` (embedding nets and the `embedder.pt` file), `evaluate`
(Recall@1/2/4/8 through pytorch-metric-learning's AccuracyCalculator), `subclusters` (how many modes survive),
`train` (`vislearn pretrain metric`), `report` (the run's index.html), `retrieve` (`vislearn pretrain retrieve`),
`grid` (the table of docs/pretrain.md), `demo` (the `make demo` row).
"""
