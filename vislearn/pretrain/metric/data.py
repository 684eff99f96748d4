"""Image sets whose classes have sub-clusters: fine classes of an existing image set grouped into coarse classes of
2-4 visually distinct modes each (the fine class of an item is its mode). The grouping is fixed and documented here;
training uses some coarse classes, retrieval is measured on the others (held out).

- `objects-modes`: the rendered objects (`vislearn.backbones.imagesets`, 24 nouns, 64 px) in 8 coarse classes of
  2, 3, 3, 4 nouns (training) and 2, 3, 3, 4 nouns (held out). Nouns that look alike (red ball / apple / orange /
  tennis ball; cup / mug / can) sit in different coarse classes, so a coarse class's modes differ in shape and
  colour. The network reads frozen ImageNet MobileNetV2 features (pooled 1280-d at 64 px), computed once and
  cached (see `trunk_features`): fine-tuning the trunk costs ~0.52 s per 64-image step on one thread (measured),
  the embedding head ~1 ms, and a whole run must stay well under a minute of one core.
- `digits-modes`: scikit-learn's digits (8x8) in 5 coarse classes of two digits: 3 for training, 2 held out
  (10 digits leave no more: retrieval on held-out classes is a 2-class problem here, and its Recall@1 is
  mostly about whether the two digits of a class stay apart from the other class's). The network is a small CNN
  on the raw 8x8 pixels.

Splits: training classes' `train` split trains, their `val` split chooses settings (Recall@1 during training);
the reported numbers are on the `test` split: Recall@k on the held-out classes, sub-cluster survival on both.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.common.errors import UserError

SIDES = ("train", "heldout", "all")


@dataclass(frozen=True)
class ModeSetSpec:
    """A sub-cluster image set: its source image set, the coarse classes (name -> its modes, fine class names)
    and which of them train."""

    name: str
    source: str  # "objects" | "digits" (`load_images`)
    size: int  # image side the network reads
    train_groups: tuple[tuple[str, ...], ...]
    heldout_groups: tuple[tuple[str, ...], ...]
    trunk: str | None  # frozen feature extractor before the trained head (None: the head reads pixels)

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        return self.train_groups + self.heldout_groups

    @property
    def classes(self) -> tuple[str, ...]:
        """Coarse class names: the modes joined by '+'."""
        return tuple("+".join(g) for g in self.groups)

    def groups_of(self, side: str) -> tuple[tuple[str, ...], ...]:
        return {"train": self.train_groups, "heldout": self.heldout_groups, "all": self.groups}[side]


MODE_SETS = {
    "objects-modes": ModeSetSpec(
        "objects-modes", "objects", 64,
        train_groups=(("red ball", "remote control"), ("tennis ball", "mug", "pen"), ("orange", "phone", "spoon"),
                      ("apple", "box", "bottle", "key")),
        heldout_groups=(("book", "banana"), ("wallet", "cup", "toy car"), ("sponge", "can", "glasses"),
                        ("light bulb", "fork", "alarm clock", "hammer")),
        trunk="mobilenet_v2_imagenet"),
    "digits-modes": ModeSetSpec(
        "digits-modes", "digits", 8,
        train_groups=(("0", "7"), ("1", "8"), ("2", "6")),
        heldout_groups=(("3", "4"), ("5", "9")),
        trunk=None),
}


@dataclass
class ModeSplit:
    """Items of one split of a sub-cluster set, restricted to some coarse classes."""

    images: torch.Tensor  # uint8 [N,3,H,W]: what the trunk (or the head) reads, and what contact sheets show
    labels: torch.Tensor  # int64 [N]: coarse class, index into `spec.classes`
    modes: torch.Tensor  # int64 [N]: fine class (mode), index into `mode_names`
    mode_names: tuple[str, ...]
    spec: ModeSetSpec
    split: str
    side: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def modes_per_class(self) -> dict[int, int]:
        return {c: len(self.spec.groups[c]) for c in self.labels.unique().tolist()}


def mode_set(name: str) -> ModeSetSpec:
    if name not in MODE_SETS:
        raise UserError(f"--data {name!r}: unknown sub-cluster set; choose from {', '.join(MODE_SETS)}")
    return MODE_SETS[name]


def parse_data_split(text: str, default_split: str = "test") -> tuple[ModeSetSpec, str]:
    """`objects-modes:test` -> (spec, "test"); the split defaults to `default_split`."""
    name, _, split = text.partition(":")
    split = split or default_split
    if split not in ("train", "val", "test"):
        raise UserError(f"{text}: unknown split {split!r}; choose from train, val, test")
    return mode_set(name), split


def load_split(spec: ModeSetSpec, split: str, side: str = "all") -> ModeSplit:
    """The images of `split` whose fine class belongs to the coarse classes of `side` (train | heldout | all)."""
    from vislearn.backbones.imagesets import load_images  # noqa: PLC0415

    data = load_images(spec.source, split, size=spec.size)
    fine_to_coarse = {fine: spec.groups.index(g) for g in spec.groups for fine in g}
    missing = [f for f in fine_to_coarse if f not in data.classes]
    if missing:  # the image set changed under us: a bug, not a user mistake
        raise RuntimeError(f"{spec.name}: fine classes {missing} not in {spec.source}")
    wanted = {spec.groups.index(g) for g in spec.groups_of(side)}
    coarse = np.array([fine_to_coarse.get(c, -1) for c in data.classes])[data.labels.numpy()]
    keep = np.flatnonzero(np.isin(coarse, list(wanted)))
    return ModeSplit(images=data.images[keep], labels=torch.from_numpy(coarse[keep]).long(),
                     modes=data.labels[keep].clone(), mode_names=tuple(data.classes), spec=spec, split=split,
                     side=side)


# ----------------------------------------------------------------------------- the frozen trunk's features
def features_cache_dir() -> Path:
    from vislearn.backbones.imagesets.load import cache_dir  # noqa: PLC0415

    return cache_dir().parent / "metric-features"


def trunk_features(spec: ModeSetSpec, part: ModeSplit, embed_images) -> torch.Tensor:
    """Features [N, D] of `part`'s images through the frozen trunk (`embed_images(uint8 images) -> array`),
    cached in $XDG_CACHE_HOME/vislearn/metric-features under a name made of the set, the split, the side and the
    images' own digest (another rendering of the images is another file). A cache that cannot be written is
    skipped."""
    from vislearn.backbones.imagesets import VERSION  # noqa: PLC0415
    from vislearn.common.files import atomic_path  # noqa: PLC0415

    digest = hashlib.sha256(part.images.numpy().tobytes()).hexdigest()[:16]
    key = json.dumps([spec.name, spec.trunk, spec.size, VERSION, part.split, part.side, digest])
    path = features_cache_dir() / f"{spec.name}-{part.split}-{part.side}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"
    if path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == len(part):
                return torch.from_numpy(feats)
        except (OSError, ValueError):
            pass  # damaged: made again
    feats = np.asarray(embed_images(part.images), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, feats)
    except OSError:
        pass
    return torch.from_numpy(feats)
