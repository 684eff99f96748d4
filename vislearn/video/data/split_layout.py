"""File names of split folders, and finding them (the official release names some files differently).

Compositional (and shuffled) folder: labels.json, train.json, validation.json, objectsA.json,
objectsB.json (+ noun_map.json, report.json written by `vislearn video splits`).
Few-shot folder: base_labels.json, base_training_set.json, base_validation_set.json,
finetune_labels.json, finetune_<k>shot_training.json, finetune_<k>shot_validation.json (draw 0),
draws/draw_<d>/finetune_<k>shot_training.json (extra draws). Reading also accepts the official
release's names (`training.json`, `finetune_10shot_train.json`, `..._val.json`, `base_train.json`,
`val.json`). Here in `datasets` because the split tool, the trainers (`actions`) and the detector
trainer (`tracking`) read these folders: every one of them finds the files through this module
(`split_files` for a compositional-style folder, `find_file` / `find_shot_files` for the rest).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vislearn.common.errors import UserError

LABELS = "labels.json"
TRAIN = "train.json"
VALIDATION = "validation.json"
OBJECTS_A = "objectsA.json"
OBJECTS_B = "objectsB.json"
NOUN_MAP = "noun_map.json"
REPORT = "report.json"

BASE_LABELS = "base_labels.json"
BASE_TRAIN = "base_training_set.json"
BASE_VAL = "base_validation_set.json"
FINETUNE_LABELS = "finetune_labels.json"
DRAWS_DIR = "draws"

_ALIASES = {
    TRAIN: ("train.json", "training.json", "training_set.json"),
    VALIDATION: ("validation.json", "val.json", "validation_set.json"),
    BASE_TRAIN: ("base_training_set.json", "base_training.json", "base_train.json"),
    BASE_VAL: ("base_validation_set.json", "base_validation.json", "base_val.json"),
}
_SHOT_FILE = re.compile(r"^finetune_(\d+)shot_(training|train|training_set|validation|val|validation_set)\.json$")


def finetune_name(shots: int, part: str) -> str:
    """The names this tool writes: finetune_5shot_training.json / finetune_5shot_validation.json."""
    return f"finetune_{shots}shot_{'training' if part == 'train' else 'validation'}.json"


def draw_dir(folder: str | os.PathLike, draw: int) -> Path:
    return Path(folder) if draw == 0 else Path(folder) / DRAWS_DIR / f"draw_{draw}"


def find_file(folder: Path, name: str) -> Path | None:
    for alias in _ALIASES.get(name, (name,)):
        if (folder / alias).is_file():
            return folder / alias
    return None


def find_shot_files(folder: Path) -> dict[int, dict[str, Path]]:
    """{shots: {"train": path, "val": path}} for the finetune files in one folder (official names too)."""
    found: dict[int, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        m = _SHOT_FILE.match(path.name)
        if m and path.is_file():
            part = "train" if m.group(2).startswith("train") else "val"
            slot = found.setdefault(int(m.group(1)), {})
            if part in slot:
                raise UserError(f"{folder}: both {slot[part].name} and {path.name} hold the {m.group(1)}-shot {part} set")
            slot[part] = path
    return dict(sorted(found.items()))


# Files of a split folder that are not record lists.
_NOT_RECORDS = {LABELS, OBJECTS_A, OBJECTS_B, NOUN_MAP, REPORT}


@dataclass
class SplitFiles:
    """The record lists of a compositional-style split folder, found under any accepted spelling.

    `sets` maps a set name to its file: `train` and `validation` whatever their spelling
    (`training.json`, `val.json`, ..., or the SSv2 release's `something-something-v2-train.json`),
    every other record list by its file name without `.json`.
    """

    folder: Path
    labels: Path | None
    sets: dict[str, Path]

    @property
    def train(self) -> Path | None:
        return self.sets.get("train")

    def records(self, name: str) -> Path:
        """The file of set `name`, or a one-line error that lists the sets there are."""
        if name not in self.sets:
            raise UserError(f"{self.folder}: no {name} set ({name}.json) in the split folder "
                            f"(available: {', '.join(self.sets) or 'none'})")
        return self.sets[name]


def split_files(folder: str | os.PathLike, flag: str = "split=", need_labels: bool = True) -> SplitFiles:
    """Find the labels and the record lists of a split folder (`flag`: the option that named it, for errors)."""
    from .ssv2 import find_metadata

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: is a file; {flag} expects a split folder (labels.json, train.json, ...)")
    if not folder.is_dir():
        raise UserError(f"{folder}: split folder not found (make one with `vislearn video splits compositional ...`)")
    ssv2 = find_metadata(folder)  # the SSv2 release itself is a split: its train and validation lists
    labels = find_file(folder, LABELS) or ssv2.get("labels")
    if need_labels and labels is None:
        raise UserError(f"{folder}: no labels.json in the split folder")
    sets: dict[str, Path] = {}
    for name, part in ((TRAIN, "train"), (VALIDATION, "validation")):
        found = [folder / a for a in _ALIASES[name] if (folder / a).is_file()]
        if len(found) > 1:
            raise UserError(f"{folder}: both {found[0].name} and {found[1].name} hold the {part} set; keep one")
        path = found[0] if found else ssv2.get(part)
        if path is not None:
            sets[part] = path
    if "test" in ssv2 and not (folder / "test.json").is_file():
        sets["test"] = ssv2["test"]
    taken = {labels, *sets.values()}
    for path in sorted(folder.glob("*.json")):
        if path in taken or path.name in _NOT_RECORDS or path.stem.endswith("labels") or not path.is_file():
            continue
        sets.setdefault(path.stem, path)
    return SplitFiles(folder, labels, sets)
