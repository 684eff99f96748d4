"""JSON reading with errors that name the file, and atomic writing (a killed run never leaves half a file).

Every JSON read of the project goes through `read_json` (a file) or `loads_json` (text from elsewhere: a
line of a .jsonl file, metadata inside a model file): bad JSON, text that is not UTF-8, and JSON nested
deeper than `MAX_DEPTH` levels are one-line `UserError`s naming the source. The depth limit is checked on
the raw text before parsing: the parser recurses once per level (`[` x 100000 is a RecursionError deep
inside it), and what it returns is walked by code that recurses too. The files of the project nest a
few levels (Something-Else boxes: 5).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_file, input_file

MAX_DEPTH = 100  # levels of [ ] / { } nesting a JSON input may have

_STRING = re.compile(rb'"[^"]*"')  # a string, once escaped quotes and backslashes are gone
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # opening +1, closing -1 (as int8)


def nesting_depth(data: bytes | str) -> int:
    """How deeply the arrays and objects of the JSON text `data` nest (0: a scalar), without parsing it:
    a few C-speed passes over the text (~5% of `json.loads`'s time on a Something-Else box file). Brackets
    inside strings do not count. Meant for valid JSON; on invalid text the answer is an estimate (the
    parser then says what is wrong)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    elif data[:4].count(0) or data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:  # UTF-16/32 (json.loads reads them too): count on the UTF-8 text
            data = data.decode(json.detect_encoding(data)).encode("utf-8", "surrogatepass")
        except (UnicodeError, LookupError):
            return 0  # the parser says what is wrong
    if b"\\" in data:  # inside strings a backslash escapes the next character: drop \\ first, then \"
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # quotes and brackets only; two adjacent quotes go (an empty string, or the end of one string and the
    # start of the next: what lies between other quotes stays inside or outside strings); then the strings
    # left (those holding brackets) go
    structure = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = _STRING.sub(b"", structure)
    if len(structure) < 4096:
        depth = deepest = 0
        for step in structure.translate(_STEPS):
            depth += 1 if step == 1 else -1
            deepest = max(deepest, depth)
        return deepest
    import numpy as np

    steps = np.frombuffer(structure.translate(_STEPS), np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def loads_json(data: bytes | str, source: str | os.PathLike, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(data)`, or a one-line UserError naming `source` (the file, or `FILE line N`): not JSON, not
    UTF-8, or nested deeper than `max_depth` levels."""
    if nesting_depth(data) > max_depth:
        raise UserError(f"{source}: nested deeper than {max_depth} levels (not a file of this kind, or damaged)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise UserError(f"{source}: not valid JSON (truncated or corrupt?): {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{source}: not UTF-8 text: {e}") from None
    except RecursionError:  # deep but within max_depth, on a nearly full stack
        raise UserError(f"{source}: nested too deeply to read") from None


def read_json(path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON file `path` (`loads_json`): a missing file, a folder, bad or too deeply nested JSON are one line."""
    path = input_file(path, "file", "a JSON file")
    with open(path, "rb") as f:
        data = f.read()
    return loads_json(data, path, max_depth)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    """Write JSON atomically (`vislearn.common.files.atomic_file`): the old file stays until the new one is whole.

    `json.dumps` then one write: `json.dump` streams through the pure-Python encoder (~4x slower).
    """
    text = json.dumps(data, indent=indent)
    with atomic_file(path, "w") as f:
        f.write(text)


def read_jsonl(path: str | os.PathLike) -> list:
    """The rows of a JSON-lines file that `write_jsonl` wrote (blank lines skipped); [] when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: str | os.PathLike, rows: list) -> None:
    """A JSON-lines file (one `metrics.jsonl` line per epoch) rewritten whole and atomically: it always holds
    whole lines, exactly the rows given (the epochs of the checkpoint a run continues from), even on a full disk."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    with atomic_file(path, "w") as f:
        f.write(text)
