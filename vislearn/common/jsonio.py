"""JSON reading with errors that name the file, and atomic writing (a killed run never leaves half a file)."""
from __future__ import annotations

import json
import os
from typing import Any

from .errors import UserError
from .files import atomic_file, input_file


def read_json(path: str | os.PathLike) -> Any:
    path = input_file(path, "file", "a JSON file")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (truncated or corrupt?): {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text: {e}") from None


def write_json(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    """Write JSON atomically (`vislearn.common.files.atomic_file`): the old file stays until the new one is whole.

    `json.dumps` then one write: `json.dump` streams through the pure-Python encoder (~4x slower).
    """
    text = json.dumps(data, indent=indent)
    with atomic_file(path, "w") as f:
        f.write(text)
