"""Something-Something V2 metadata: the labels file and the train/validation/test record lists.

Formats (official):
  labels:      {"Pushing something from left to right": "93", ...}   (values strings or ints)
  train/val:   [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
                 "template": "Holding [something] next to [something]",
                 "placeholders": ["potato", "vicks vaporub bottle"]}, ...]
  test:        [{"id": "1420"}, ...]
A record's class is its template with the brackets removed, looked up in the labels file.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json

_BRACKETS = re.compile(r"\[(.*?)\]")


@lru_cache(maxsize=4096)
def template_to_class(template: str) -> str:
    """'Putting [something] onto [something]' -> 'Putting something onto something'.

    Cached: a few hundred templates are looked up once per record (220,000 records in the split tool)."""
    return _BRACKETS.sub(r"\1", template).strip()


@dataclass
class Record:
    """One SSv2 video record. `template` is None for test-set records (they carry only an id)."""

    id: str
    template: str | None = None
    label: str | None = None
    placeholders: list[str] = field(default_factory=list)

    @property
    def class_name(self) -> str | None:
        return None if self.template is None else template_to_class(self.template)

    def to_json(self) -> dict:
        if self.template is None:
            return {"id": self.id}
        return {"id": self.id, "label": self.label if self.label is not None else "",
                "template": self.template, "placeholders": list(self.placeholders)}


class Labels(dict):
    """class name -> index, as read from `path` (named by the errors of `class_names`)."""

    def __init__(self, items=(), path: str | os.PathLike | None = None):
        super().__init__(items)
        self.path = path


def load_labels(path: str | os.PathLike) -> dict[str, int]:
    """Read a labels file: class name -> index (a `Labels`, which remembers the file). Checks that indices are
    unique integers."""
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected a non-empty JSON object mapping class names to indices")
    labels: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, value in data.items():
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise UserError(f"{path}: class {name!r} has index {value!r}, expected an integer") from None
        if index in seen:
            raise UserError(f"{path}: index {index} used by both {seen[index]!r} and {name!r}")
        seen[index] = name
        labels[template_to_class(name)] = index
    return Labels(labels, path)


def save_labels(path: str | os.PathLike, labels: dict[str, int]) -> None:
    """Write labels in the official style (index values as strings), ordered by index."""
    ordered = sorted(labels.items(), key=lambda kv: kv[1])
    write_json(path, {name: str(index) for name, index in ordered})


def class_names(labels: dict[str, int]) -> list[str]:
    """Class names ordered by index; the indices must be 0..K-1."""
    ordered = sorted(labels.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        source = getattr(labels, "path", None) or "labels"
        have = {i for _, i in ordered}
        missing = [i for i in range(len(ordered)) if i not in have][:5]
        raise UserError(f"{source}: label indices must be 0..K-1 without gaps ({len(ordered)} classes; missing: "
                        f"{', '.join(map(str, missing))}{' ...' if len(missing) == 5 else ''})")
    return [name for name, _ in ordered]


def parse_record(item: object, path: str | os.PathLike, position: int, labels: dict[str, int] | None) -> Record:
    where = f"{path}: record {position}"
    if not isinstance(item, dict):
        raise UserError(f"{where}: expected an object, got {type(item).__name__}")
    if "id" not in item:
        raise UserError(f"{where}: missing field 'id'")
    video_id = str(item["id"])
    where = f"{path}: record {position} (id {video_id})"
    template = item.get("template")
    if template is None:
        if labels is not None:
            raise UserError(f"{where}: missing field 'template'")
        return Record(id=video_id)
    if not isinstance(template, str):
        raise UserError(f"{where}: 'template' must be a string")
    if "placeholders" not in item:
        raise UserError(f"{where}: missing field 'placeholders'")
    placeholders = item["placeholders"]
    if not isinstance(placeholders, list) or not all(isinstance(p, str) for p in placeholders):
        raise UserError(f"{where}: 'placeholders' must be a list of strings")
    record = Record(id=video_id, template=template, label=item.get("label"), placeholders=list(placeholders))
    if labels is not None and record.class_name not in labels:
        raise UserError(f"{where}: template {template!r} is not in the labels file")
    return record


def load_records(path: str | os.PathLike, labels: dict[str, int] | None = None) -> list[Record]:
    """Read a train/validation/test list. With `labels`, every record must have a known template."""
    data = read_json(path)
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of records")
    records = [parse_record(item, path, i, labels) for i, item in enumerate(data)]
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{path}: video id {dup} appears more than once")
    return records


def save_records(path: str | os.PathLike, records: Iterable[Record]) -> None:
    write_json(path, [r.to_json() for r in records])


def find_metadata(folder: str | os.PathLike) -> dict[str, Path]:
    """Locate the standard SSv2 file names in a folder (labels, train, validation, test)."""
    folder = Path(folder)
    names = {
        "labels": "something-something-v2-labels.json",
        "train": "something-something-v2-train.json",
        "validation": "something-something-v2-validation.json",
        "test": "something-something-v2-test.json",
    }
    return {k: folder / v for k, v in names.items() if (folder / v).exists()}
