"""Reading and writing split folders in the official Something-Else formats.

Compositional (and shuffled) folder:
  labels.json          {class name: "index"}, indices 0..K-1
  train.json           list of SSv2 records {id, label, template, placeholders}
  validation.json      same
  objectsA.json        JSON list of nouns (set A)       -- compositional only
  objectsB.json        JSON list of nouns (set B)       -- compositional only
  noun_map.json        {raw placeholder: canonical noun} -- written by this tool
  report.json          what was done: counts, drops by reason, merges, objective
Few-shot folder:
  base_labels.json, base_training_set.json, base_validation_set.json, finetune_labels.json,
  finetune_<k>shot_training.json, finetune_<k>shot_validation.json   (draw 0)
  draws/draw_<d>/finetune_<k>shot_training.json                     (extra draws, d >= 1)
Reading also accepts the official release's inconsistent names (`finetune_10shot_train.json`,
`..._val.json`, `base_train.json`, `val.json`, `training.json`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.video.data.ssv2 import Record, parse_record

from vislearn.video.data.split_layout import (  # noqa: F401  (re-exported: the split tool's file names)
    LABELS, TRAIN, VALIDATION, OBJECTS_A, OBJECTS_B, NOUN_MAP, REPORT, BASE_LABELS, BASE_TRAIN, BASE_VAL, FINETUNE_LABELS, DRAWS_DIR, _ALIASES, _SHOT_FILE, finetune_name, draw_dir, find_file, find_shot_files)


def save_labels(path: str | os.PathLike, labels: dict[str, int]) -> None:
    """Official style: {class name: "index"}, ordered by index."""
    write_json(path, {name: str(index) for name, index in sorted(labels.items(), key=lambda kv: kv[1])})


def save_records(path: str | os.PathLike, records: Iterable[Record]) -> None:
    write_json(path, [r.to_json() for r in records])


def parse_records(data: object, path: str | os.PathLike) -> list[Record]:
    """Records from a parsed JSON list. Well-formed items take a fast path; anything else goes
    through `datasets.ssv2.parse_record`, which raises the error naming file, position and id."""
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of records")
    out = []
    for i, item in enumerate(data):
        if type(item) is dict:
            tpl = item.get("template")
            ph = item.get("placeholders")
            vid = item.get("id")
            if (type(tpl) is str and type(ph) is list and vid is not None
                    and all(type(p) is str for p in ph)):
                out.append(Record(id=str(vid), template=tpl, label=item.get("label"), placeholders=list(ph)))
                continue
        out.append(parse_record(item, path, i, None))
    return out


def read_records(path: str | os.PathLike) -> list[Record]:
    """A record list without label checks (validate wants to report unknown templates, not stop)."""
    return parse_records(read_json(path), path)


def refuse_shared_ids(train_ids: Iterable[str], train_source: str | os.PathLike, other_ids: Iterable[str],
                      other_source: str | os.PathLike, shown: int = 5) -> None:
    """A one-line UserError when a video id is in both lists (what `splits validate` checks as
    disjoint-ids): a video trained on and then evaluated (or used to choose the checkpoint) makes every
    figure of the run wrong without a word. Names a few ids and the count."""
    train = {str(i) for i in train_ids}
    both = [str(i) for i in dict.fromkeys(other_ids) if str(i) in train]
    if both:
        more = f", ... ({len(both)} in all)" if len(both) > shown else ""
        raise UserError(f"{other_source}: {len(both)} video id(s) also in the training list {train_source} "
                        f"({', '.join(both[:shown])}{more}): a video trained on would be evaluated; fix the "
                        f"split (`vislearn video splits validate` checks it)")


def read_nouns(path: str | os.PathLike) -> list[str]:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise UserError(f"{path}: expected a JSON list of noun strings")
    return data


def read_labels_raw(path: str | os.PathLike) -> dict[str, object]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object mapping class names to indices")
    return data


@dataclass
class ShotFiles:
    train: Path | None = None
    val: Path | None = None


@dataclass
class SplitFolder:
    """The files found in a split folder (paths only; nothing is parsed here)."""

    path: Path
    labels: Path | None = None
    train: Path | None = None
    validation: Path | None = None
    objects_a: Path | None = None
    objects_b: Path | None = None
    noun_map: Path | None = None
    report: Path | None = None
    base_labels: Path | None = None
    base_train: Path | None = None
    base_val: Path | None = None
    finetune_labels: Path | None = None
    shots: dict[int, dict[int, ShotFiles]] = field(default_factory=dict)  # draw -> shots -> files

    @property
    def is_fewshot(self) -> bool:
        return any(p is not None for p in (self.base_labels, self.base_train, self.base_val, self.finetune_labels)) \
            or bool(self.shots)

    @property
    def is_compositional(self) -> bool:
        return any(p is not None for p in (self.labels, self.train, self.validation, self.objects_a, self.objects_b))

    def read_report(self) -> dict:
        if self.report is None:
            return {}
        data = read_json(self.report)
        return data if isinstance(data, dict) else {}

    def kind(self) -> str:
        """'compositional', 'shuffled' or 'fewshot' (from report.json when present, else from the files)."""
        kind = self.read_report().get("kind")
        if kind in ("compositional", "shuffled", "fewshot"):
            return kind
        if self.is_fewshot:
            return "fewshot"
        return "compositional"


def scan_folder(folder: str | os.PathLike) -> SplitFolder:
    """Find the split files in `folder`; a clear error if it is missing or holds none of them."""
    path = Path(folder)
    if not path.exists():
        raise UserError(f"{path}: folder not found")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (expected a split folder with labels.json, train.json, ...)")
    sf = SplitFolder(
        path=path,
        labels=find_file(path, LABELS),
        train=find_file(path, TRAIN),
        validation=find_file(path, VALIDATION),
        objects_a=find_file(path, OBJECTS_A),
        objects_b=find_file(path, OBJECTS_B),
        noun_map=find_file(path, NOUN_MAP),
        report=find_file(path, REPORT),
        base_labels=find_file(path, BASE_LABELS),
        base_train=find_file(path, BASE_TRAIN),
        base_val=find_file(path, BASE_VAL),
        finetune_labels=find_file(path, FINETUNE_LABELS),
    )
    draws = {0: find_shot_files(path)}
    draws_root = path / DRAWS_DIR
    if draws_root.is_dir():
        for sub in sorted(draws_root.iterdir()):
            m = re.fullmatch(r"draw_(\d+)", sub.name)
            if m and sub.is_dir():
                draws[int(m.group(1))] = find_shot_files(sub)
    sf.shots = {d: {k: ShotFiles(v.get("train"), v.get("val")) for k, v in shots.items()}
                for d, shots in sorted(draws.items()) if shots}
    if not (sf.is_fewshot or sf.is_compositional):
        raise UserError(f"{path}: no split files found (expected labels.json/train.json/validation.json/"
                        "objectsA.json/objectsB.json, or base_labels.json/finetune_labels.json/finetune_<k>shot_*.json)")
    return sf


def write_compositional_folder(out: str | os.PathLike, labels: dict[str, int], train: list[Record],
                               validation: list[Record], objects_a: list[str] | None = None,
                               objects_b: list[str] | None = None, noun_map: dict[str, str] | None = None,
                               report: dict | None = None) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_labels(out / LABELS, labels)
    save_records(out / TRAIN, train)
    save_records(out / VALIDATION, validation)
    if objects_a is not None:
        write_json(out / OBJECTS_A, objects_a)
    if objects_b is not None:
        write_json(out / OBJECTS_B, objects_b)
    if noun_map is not None:
        write_json(out / NOUN_MAP, noun_map, indent=0)
    if report is not None:
        write_report(out, report)


def write_report(out: str | os.PathLike, report: dict) -> None:
    write_json(Path(out) / REPORT, report, indent=2)
