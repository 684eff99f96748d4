"""File names of split folders, and finding them (the official release names some files differently).

Compositional (and shuffled) folder: labels.json, train.json, validation.json, objectsA.json,
objectsB.json (+ noun_map.json, report.json written by `python -m splits`).
Few-shot folder: base_labels.json, base_training_set.json, base_validation_set.json,
finetune_labels.json, finetune_<k>shot_training.json, finetune_<k>shot_validation.json (draw 0),
draws/draw_<d>/finetune_<k>shot_training.json (extra draws). Reading also accepts the official
release's names (`finetune_10shot_train.json`, `..._val.json`, `base_train.json`, `val.json`).
Here in `datasets` because both the split tool and the trainers read these folders.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from common.errors import UserError

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
