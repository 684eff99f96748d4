"""Out-of-fold predictions: what a combination of streams may learn from without a stacking leak.

A fusion head or ensemble weights fitted on the videos the streams trained on learn the streams' training
accuracy, not their accuracy on new videos (the scene stream is right on 60% of its own training videos and
on 30% held out), and trust the overconfident stream. Two sources of honest scores on training videos:

- **K-fold cross-fitting** (`fold_splits`, `out_of_fold`): the training list is cut into K class-stratified
  folds (by default whole action-object combinations, `assign_folds`); fold run k trains on the other K-1 folds (choosing its checkpoint on a held-out part of those) and
  scores fold k, written as the split folder's validation side so that the ordinary trainer's scores.npz
  *is* the out-of-fold part. Costs K extra trainings per stream, each on (K-1)/K of the videos.
- **The held-out slice** every run already keeps for choosing its checkpoint (`holdout_fraction`, the same
  videos for every stream of a seed): `holdout_scores.npz`, free, but about a tenth of the videos, and the
  epoch was chosen on them.

`out_of_fold` checks by video id that every score comes from a model that did not train on that video.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.video.data.split_layout import LABELS, TRAIN, VALIDATION, split_files
from vislearn.video.data.ssv2 import load_labels

HOLDOUT_SCORES = "holdout_scores.npz"


@dataclass
class Scores:
    """Softmax scores of a set of videos, in the order of `ids`."""

    ids: list[str]
    scores: np.ndarray  # [N, K]
    labels: np.ndarray  # [N]
    source: str = ""

    def take(self, ids: list[str]) -> "Scores":
        pos = {v: i for i, v in enumerate(self.ids)}
        missing = [v for v in ids if v not in pos]
        if missing:
            raise UserError(f"{self.source}: no scores of {len(missing)} videos (e.g. {missing[:3]})")
        sel = [pos[v] for v in ids]
        return Scores(list(ids), self.scores[sel], self.labels[sel], self.source)


def read_scores(path: Path) -> Scores:
    """A scores.npz as the trainer and `evaluate` write it."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such scores file")
    z = np.load(path)
    return Scores([str(v) for v in z["video_id"].tolist()], z["scores"], z["label"], str(path))


def common_ids(parts: list[Scores]) -> list[str]:
    """Videos scored by every part, sorted; the parts must agree on their labels."""
    ids = sorted(set.intersection(*(set(p.ids) for p in parts)))
    labels = [p.take(ids).labels for p in parts]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        raise UserError(f"{', '.join(p.source for p in parts)}: the score files disagree on the labels of their videos")
    return ids


FOLD_RULES = ("combination", "video", "compositional")
FOLDS_DIR = {"combination": "folds_combination", "video": "folds", "compositional": "folds_compositional"}
COMPOSITIONAL_FOLDS = 2  # the two sides of a compositional split of the training list


def assign_folds(items: list[dict], k: int, seed: int, by: str = "combination",
                 labels: dict[str, int] | None = None) -> dict[str, int]:
    """video id -> fold in 0..k-1, each fold holding about 1/k of each class's videos.

    by="video": each class's videos shuffled (seeded) and dealt round the folds. by="combination": the videos
    of one action-object combination (template and placeholders) stay together, so a fold model scores
    combinations it never saw, with verbs and nouns it saw in other combinations. Out-of-fold scores then show
    how much a stream loses on new combinations (the scene stream's noun shortcut), which video-level folds
    hide. by="compositional": see `compositional_folds` (k must be 2; `labels` needed)."""
    if by not in FOLD_RULES:
        raise ValueError(f"fold rule {by!r}: valid {', '.join(FOLD_RULES)}")
    if by == "compositional":
        if k != COMPOSITIONAL_FOLDS:
            raise UserError(f"--fold-by compositional makes {COMPOSITIONAL_FOLDS} folds (the two sides of a "
                            f"compositional split of the training list), got --folds {k}")
        if not labels:
            raise ValueError("compositional folds need the split's labels")
        return compositional_folds(items, labels, seed)
    if k < 2:
        raise UserError(f"--folds must be at least 2 for cross-fitting, got {k}")
    rng = np.random.default_rng([seed, 104729])
    groups: dict[str, dict[tuple, list[str]]] = {}
    for item in items:
        key = (str(item["id"]),) if by == "video" else tuple(sorted(map(str, item.get("placeholders") or [])))
        groups.setdefault(str(item["template"]), {}).setdefault(key, []).append(str(item["id"]))
    folds: dict[str, int] = {}
    total = np.zeros(k, int)
    for name in sorted(groups):
        members = sorted(groups[name].values())
        order = sorted(rng.permutation(len(members)), key=lambda i: -len(members[i]))  # big groups first
        per_class = np.zeros(k, int)
        for i in order:
            f = min(range(k), key=lambda j: (per_class[j], total[j], j))  # the emptiest fold of this class
            for v in members[i]:
                folds[v] = f
            per_class[f] += len(members[i])
            total[f] += len(members[i])
    return folds


def compositional_folds(items: list[dict], labels: dict[str, int], seed: int) -> dict[str, int]:
    """video id -> 0 or 1: the two sides of the project's compositional split (`splits.compositional`, the
    same search, seeded) made anew on the training list itself.

    Within a compositional training list, each template group goes with one noun set, so a noun predicts the
    verb's group there and on any fold of it that keeps combinations together, while on the validation side
    that prediction is wrong by construction. Splitting the training list again the same way flips it once
    more: a fold model trained on one side (templates 1' with nouns A', 2' with B') scores the other side (1'
    with B', 2' with A'), so its out-of-fold scores meet the shortcut failing as validation will. Each fold
    model sees about half the videos. Videos the split cannot place (nouns in both sets) get no fold: they are
    on neither side, neither trained on nor scored by the fold runs."""
    from vislearn.video.splits.compositional import Options, Pool, make_compositional
    from vislearn.video.splits.io import parse_records

    result = make_compositional(Pool(labels=labels, records=parse_records(items, "the training list")),
                                Options(seed=seed))
    return {**{r.id: 0 for r in result.train}, **{r.id: 1 for r in result.validation}}


def fold_splits(split: Path, root: Path, k: int, seed: int, by: str = "combination") -> list[Path]:
    """root/fold<i>/split for i < k: the split's labels, the training videos of the other folds, and fold i
    as the validation side. Written once; an existing fold folder must hold the same lists (same split, k,
    seed, rule)."""
    files = split_files(split)
    items = read_json(files.train)
    labels = read_json(files.labels)
    folds = assign_folds(items, k, seed, by, labels=load_labels(files.labels))
    out = []
    for i in range(k):
        folder = root / f"fold{i}" / "split"
        want = {LABELS: labels, TRAIN: [it for it in items if folds.get(str(it["id"]), i) != i],
                VALIDATION: [it for it in items if folds.get(str(it["id"])) == i]}
        if (folder / VALIDATION).exists():
            if any(read_json(folder / name) != value for name, value in want.items()):
                raise UserError(f"{folder}: holds other fold lists (another split, number of folds: --folds or "
                                f"--detector-folds, rule or seed); choose another --out or remove it")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in want.items():  # validation last: its presence marks a complete folder
                write_json(folder / name, value)
        out.append(folder)
    return out


def fold_ids(folder: Path) -> tuple[set[str], set[str]]:
    """(training ids, out-of-fold ids) of one fold's split folder."""
    return ({str(r["id"]) for r in read_json(folder / TRAIN)}, {str(r["id"]) for r in read_json(folder / VALIDATION)})


def out_of_fold(runs: list[Path], splits: list[Path]) -> Scores:
    """The fold runs' scores put together: each training video scored once, by the run of its own fold.

    Refused (one line) when a run's scores are not exactly its fold's videos, when a run trained on a video
    it scored, or when two folds score the same video: each would leak training fit into the combination."""
    parts, seen = [], set()
    for run, folder in zip(runs, splits):
        part = read_scores(run / "scores.npz")
        trained, held = fold_ids(folder)
        ids = set(part.ids)
        if ids & trained:
            raise UserError(f"{run}: scores {len(ids & trained)} videos its run trained on (e.g. {sorted(ids & trained)[:3]})")
        if ids != held:
            raise UserError(f"{run}: scores {len(ids)} videos, but its fold ({folder / VALIDATION}) holds {len(held)}")
        if ids & seen:
            raise UserError(f"{run}: scores videos another fold scored already (e.g. {sorted(ids & seen)[:3]})")
        seen |= ids
        parts.append(part)
    ids = [v for p in parts for v in p.ids]
    return Scores(ids, np.concatenate([p.scores for p in parts]), np.concatenate([p.labels for p in parts]),
                  f"out-of-fold scores of {runs[0].parent}")


def held_out_scores(run: Path) -> Scores:
    """A run's scores on its own held-out slice of training (the checkpoint it chose)."""
    path = run / HOLDOUT_SCORES
    if not path.is_file():
        raise UserError(f"{path}: missing (the run kept no held-out videos, holdout_fraction=0, or an older "
                        f"version trained it); rerun it with holdout_fraction > 0")
    return read_scores(path)
