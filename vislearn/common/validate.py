"""Checked settings: each field of a config dataclass says which values it takes, and one `validate(cfg)`
checks them all, so a value that cannot work is one line when the config loads (and by --dry-run, which
loads it the same way), never a traceback an hour into a run.

    @dataclass
    class RunConfig:
        epochs: int = setting(50, min=1)
        lr: float = setting(0.01, above=0)
        steps: list[int] = setting(factory=lambda: [24, 35], min=0)   # bounds apply to every item
        crop: str = setting("full", choices=("full", "center"))
        size: list[int] = setting(factory=list, min=1, length=(0, 2))  # [] or [w, h]

What the type annotation says is checked for every field, with or without `setting`:
- `int`: a whole number (not a bool); `float`: a finite number (an int is fine); `bool`: true or false;
- `str`: text without NUL bytes (a NUL in a path is a ValueError deep inside `os`);
- `list[T]`: a list of T; `dict`: a mapping with text keys; no string inside either holds a NUL byte.
`setting` adds bounds (`min`/`max` inclusive, `above`/`below` exclusive), `choices`, `length` (the list
lengths allowed) and `hints` (value -> a note added to the error, e.g. an old name). `coerce` turns text
from a command line (`key=value`: YAML) into the field's type; `apply` sets values from one source and
checks each as it goes, so the error names the file (or `key=value` of the command line) it came from.
Errors read `SOURCE: key=value: must be ...` (no SOURCE for the command line, where the user typed it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import UserError

COMMAND_LINE = "command line"
RULE = "vislearn.rule"  # the key of a field's metadata holding its Rule


@dataclasses.dataclass(frozen=True)
class Rule:
    """The values a setting takes, besides its type (see the module's docstring)."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    length: tuple[int, ...] | None = None
    hints: Mapping[Any, str] | None = None

    def bounds(self) -> str:
        if self.min is not None and self.max is not None:
            return f"from {_num(self.min)} to {_num(self.max)}"
        parts = [f"{word} {_num(v)}" for word, v in (("at least", self.min), ("above", self.above),
                                                       ("at most", self.max), ("below", self.below)) if v is not None]
        return " and ".join(parts)

    def within(self, v: float) -> bool:
        return ((self.min is None or v >= self.min) and (self.max is None or v <= self.max)
                and (self.above is None or v > self.above) and (self.below is None or v < self.below))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def setting(default: Any = MISSING, *, factory: Callable[[], Any] | Any = MISSING, min: float | None = None,
            max: float | None = None, above: float | None = None, below: float | None = None,
            choices: typing.Iterable | None = None, length: int | typing.Iterable[int] | None = None,
            hints: Mapping[Any, str] | None = None) -> Any:
    """A dataclass field with the values it takes (`dataclasses.field(default=..., metadata=...)`)."""
    rule = Rule(min=min, max=max, above=above, below=below, choices=None if choices is None else tuple(choices),
                length=None if length is None else ((length,) if isinstance(length, int) else tuple(length)),
                hints=hints)
    return dataclasses.field(default=default, default_factory=factory, metadata={RULE: rule})


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get(RULE) or Rule()


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


_HINTS: dict[type, dict[str, Any]] = {}


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if depth > 50:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def _kind_word(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        return f"a list of {_kind_word(item).removeprefix('a ').removeprefix('an ')}s" if item is not Any else "a list"
    return {bool: "true or false", int: "a whole number", float: "a finite number", str: "text",
            dict: "a mapping (key: value)", list: "a list"}.get(kind, f"a {getattr(kind, '__name__', kind)}")


def _type_ok(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if kind is dict or typing.get_origin(kind) is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if kind is list or typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    return isinstance(value, kind) if isinstance(kind, type) else True


def problem(value: Any, kind: Any, rule: Rule) -> str | None:
    """What is wrong with `value` for a setting of type `kind` with `rule` ('must be ...'), or None."""
    if not _type_ok(value, kind):
        if kind is float and isinstance(value, float) and rule.bounds():  # nan, inf
            return f"must be a finite number {rule.bounds()}"
        return f"must be {_kind_word(kind)}"
    if _has_nul(value):
        return "must not hold a NUL byte"
    listed = typing.get_origin(kind) is list or kind is list
    if listed and rule.length is not None and len(value) not in rule.length:
        lengths = " or ".join(map(str, rule.length))
        return f"must be a list of {lengths} item{'s' if rule.length != (1,) else ''}"
    items = value if listed else [value]
    if rule.choices is not None and any(v not in rule.choices for v in items):
        bad = next(v for v in items if v not in rule.choices)
        note = (rule.hints or {}).get(bad, "")
        return f"must be one of {', '.join(map(str, rule.choices))}{note}"
    if rule.bounds() and any(isinstance(v, (int, float)) and not rule.within(v) for v in items):
        item_kind = typing.get_args(kind)[0] if listed and typing.get_args(kind) else kind
        what = "finite number " if item_kind is float else ""
        each = "each item " if listed else ""
        return f"{each}must be {'a ' + what if what else ''}{rule.bounds()}"
    return None


def where(source: str, key: str, value: Any) -> str:
    """`SOURCE: key=value` (`key=value` alone for the command line)."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{key}={shown}" if source == COMMAND_LINE else f"{source}: {key}={shown}"


def check_field(cfg: Any, key: str, source: str = COMMAND_LINE) -> None:
    """One field of the dataclass instance `cfg` against its type and rule: a UserError naming `source` and the key."""
    f = cfg.__dataclass_fields__[key]
    value = getattr(cfg, key)
    why = problem(value, _hints(type(cfg))[key], rule_of(f))
    if why:
        raise UserError(f"{where(source, key, value)}: {why}")


def validate(cfg: Any, sources: Mapping[str, str] | None = None) -> None:
    """Every field of the dataclass instance `cfg` (`check_field`); `sources`: key -> where its value came from."""
    for f in dataclasses.fields(cfg):
        check_field(cfg, f.name, (sources or {}).get(f.name, "config"))


def coerce(cls: type, key: str, value: Any, source: str = COMMAND_LINE) -> Any:
    """A value from YAML or from the command line (text, read as YAML unless the field is text) in the type of
    `cls`'s field `key`: 3 for a float is 3.0, one value for a list is a list of it, null for a mapping is {},
    for text ''. A value of another type is left as it is for `check_field` to refuse."""
    kind = _hints(cls)[key]
    base = typing.get_origin(kind) or kind
    if isinstance(value, str) and base is not str:
        if value == "" and base in (list, dict):
            return base()  # `frame_size=`: left out
        value = load_yaml(value, where(source, key, value), f"must be {_kind_word(kind)}")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, str):
        try:  # what YAML 1.1 leaves as text: 1e-3 (no dot), nan, inf
            return float(value)
        except ValueError:
            return value
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if base is str and value is None:
        return ""
    if base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `eval_set: 2024` in YAML is the text 2024
    if base in (dict, list) and value is None:
        return base()  # `frame_size: null`: left out
    if base is list and isinstance(value, tuple):
        return list(value)
    if base is list and value is not None and not isinstance(value, (list, dict, str)):
        return [value]
    return value


def apply(cfg: Any, values: Mapping[str, Any], source: str, sources: dict[str, str] | None = None,
          merge: typing.Iterable[str] = ()) -> Any:
    """Set `values` (key -> value, from `source`: a file's name or the command line) on the dataclass instance
    `cfg`, each coerced (`coerce`) and checked (`check_field`) as it is set. An unknown key is one line that lists
    the valid ones. Keys in `merge` (mappings) update the current mapping instead of replacing it. `sources`, when
    given, records where each key's value came from."""
    valid = [f.name for f in dataclasses.fields(cfg)]
    for key, value in values.items():
        if key not in valid:
            raise UserError(f"{source}: unknown config key {key!r}; valid keys: {', '.join(valid)}")
        value = coerce(type(cfg), key, value, source)
        if key in merge and isinstance(value, dict) and isinstance(getattr(cfg, key), dict):
            value = {**getattr(cfg, key), **value}
        setattr(cfg, key, value)
        check_field(cfg, key, source)
        if sources is not None:
            sources[key] = source
    return cfg


def load_yaml(text: str, source: str, what: str = "not valid YAML") -> Any:
    """`yaml.safe_load(text)`, or one line naming `source`: invalid YAML, or nesting too deep for the parser
    (which recurses once per level)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        detail = f": {e}" if what == "not valid YAML" else " (not valid YAML)"
        raise UserError(f"{source}: {what}{detail}") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply") from None


def config_chain(path: str | os.PathLike, what: str = "config file") -> list[tuple[Path, dict]]:
    """The YAML config `path` and those it extends: each may name another with `base:` (a path relative to
    it). Returns (file, its mapping without `base`) from the first base to `path` itself. A chain that comes
    back to a file it passed (a file that is its own base too) is one line showing the chain."""
    from .files import input_file

    chain: list[tuple[Path, dict]] = []
    seen: set[Path] = set()
    while True:
        path = input_file(path, what, "a YAML config file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text: {e}") from None
        values = load_yaml(text, str(path)) or {}
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of config keys")
        seen.add(path.resolve())
        base = values.pop("base", None)
        chain.append((path, values))
        if base is None or base == "":
            return chain[::-1]
        if not isinstance(base, str) or "\0" in base:
            why = "must not hold a NUL byte" if isinstance(base, str) else "must be the path of a config file (relative to this one)"
            raise UserError(f"{where(str(path), 'base', base)}: {why}")
        nxt = path.parent / base
        if nxt.exists() and nxt.resolve() in seen:
            names = " -> ".join([*(str(p) for p, _ in chain), str(nxt)])
            itself = " (a config cannot be its own base)" if nxt.resolve() == path.resolve() else ""
            raise UserError(f"{path}: base: the chain of configs loops{itself}: {names}")
        path = nxt


def load_settings(cfg: Any, path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> Any:
    """`cfg` (a dataclass holding the defaults) after the YAML `path` (and the configs it extends with `base:`),
    then `key=value` overrides from the command line, each value converted and checked (`apply`). Returns `cfg`."""
    for file, values in config_chain(path) if path else []:
        apply(cfg, values, str(file))
    values = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        values[key] = value
    apply(cfg, values, COMMAND_LINE)
    return cfg
