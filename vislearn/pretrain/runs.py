"""What every pre-training command does with its run folder and its flags, once: claim the folder (locked; files
of the run's names that vislearn did not write are refused unless `--overwrite`), refuse a second run in it without
`--resume`, refuse a resume with other settings, and hand back the results of a run that already finished."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

from vislearn.common.checkpoint import load_checkpoint
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder

# settings that may change when a run resumes (they change how it runs, not what it computes)
FREE_ON_RESUME = ("out", "threads")


def open_run(cfg, kind: str, run_files: Iterable[str], resume: bool, overwrite: bool,
             finished: Callable[[dict], bool], inputs: Iterable = ()) -> dict | None:
    """Claim `cfg.out` for a run of `cfg` (a dataclass). Returns results.json's content when `resume` finds the run
    finished (`finished(last.pt's checkpoint)`), else None after writing config.json."""
    out = Path(cfg.out)
    last = out / "last.pt"
    claim = claim_folder(out, kind=kind, lock=True, flag="--out", overwrite=overwrite)
    if last.exists() and not resume:
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    claim.check(run_files, overwrite or (resume and last.exists()), list(inputs))
    config = dataclasses.asdict(cfg)
    if resume and (out / "config.json").exists():
        saved = read_json(out / "config.json")
        diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in config.items()
                if k not in FREE_ON_RESUME and saved.get(k) != v]
        if diff:
            raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])});"
                            " resume with the run's values or choose another --out")
        if (out / "results.json").exists() and last.exists() and finished(load_checkpoint(last)):
            return read_json(out / "results.json")
    write_json(out / "config.json", config, indent=1)
    return None


def add_config_flags(parser: argparse.ArgumentParser, defaults, helps: dict[str, str], skip: Iterable[str] = (),
                     shown: dict[str, object] | None = None) -> None:
    """One `--flag-name` per field of the dataclass instance `defaults` (bools as --x/--no-x), with its help and
    default (`shown` overrides the default printed)."""
    shown = shown or {}
    for f in dataclasses.fields(defaults):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f"{helps[f.name]} (default {shown.get(f.name, default)})"
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, type={"int": int, "float": float, "str": str}[kind], default=default, help=text)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace files of the run's names in --out that "
                        "vislearn did not write")
