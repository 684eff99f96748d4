"""The output rules every command follows: replace only what vislearn made, one writer per folder,
check before the work.

- **Only our own files are replaced.** Every folder a command writes into keeps a small hidden
  manifest, `.vislearn-outputs` (JSON lines: `{"name", "size", "mtime_ns"}` per file written, the last
  of a name counting, and the folder's `{"kind"}`; see `read_manifest`), of the files vislearn wrote there. `vislearn.common.files.atomic_path` (so `atomic_file`, `write_text`,
  `write_json`, checkpoints, plots, videos) records every file it completes in the manifest of the
  folder the running command claimed (or of the file's own folder when that has a manifest). An
  existing file that matches its record (same size and modification time) was made by vislearn and
  may be replaced: re-runs and resumes work. Any other file (a user's, or one of ours changed since)
  is replaced only when the user passes --overwrite. A copy keeps its records when it keeps the
  modification times (`cp -a`, `rsync -a`, `shutil.copytree`); otherwise --overwrite says it is ours.
  A damaged record counts as missing (then --overwrite is asked for: nothing is lost).
- **Single-file outputs** (`--out F`, `--json F`) whose folder is the user's get no manifest: an
  existing F is replaced only with --overwrite (or when F's folder has a manifest that records it).
- **A folder belongs to one command** (`kind`, kept in its manifest): e.g. `evaluate --out RUN` of a
  training run is refused; guests that add a file to any output folder (`report`) claim no kind.
- **Checked before the work:** `claim_folder` / `claim_file` refuse, in one line and before anything
  is read or written, an output of the wrong kind (a file where a folder goes, or the reverse), one
  that is an input, a folder that cannot be written (`check_writable`: read-only, immutable, not
  ours), and strangers among the files the command will write.
- **One writer per run folder:** `claim_folder(..., lock=True)` takes `vislearn.common.lock`'s lock
  (a second writer is refused in one line naming the folder and the other pid). The checks run
  under the lock, so two runs started together cannot both pass them.

A claim lasts until `Claim.release()` or the end of the command (`session`, which
`vislearn.common.cli.run_main` opens around every command). A folder the claim had to make for its
lock is removed again when nothing was written into it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError
from .lock import lock_folder, unlock_folder

PathLike = str | os.PathLike
MANIFEST = ".vislearn-outputs"  # no .json suffix: globs for a split's *.json never see it
HIDDEN = (MANIFEST,)  # the names the rules add to a folder (tests leave them out of "nothing else there")


# ------------------------------------------------------------------------------- kinds of paths

def _file_above(path: Path) -> Path | None:
    """The nearest existing parent of `path` when it is a file (then nothing can be made below it)."""
    parent = next((p for p in path.parents if p.exists()), None)
    return parent if parent is not None and not parent.is_dir() else None


def output_file(path: PathLike, flag: str = "") -> Path:
    """`path` as an output file name: refused (one line) when it is an existing folder or its parent is a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; {flag + ' ' if flag else ''}expects a file name")
    if (above := _file_above(path)) is not None:
        raise UserError(f"{above}: is a file, so {path} cannot be written")
    return path


def output_folder(path: PathLike, flag: str = "") -> Path:
    """`path` as an output folder: refused (one line) when it is an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file; {flag + ' ' if flag else ''}expects a folder")
    if (above := _file_above(path)) is not None:
        raise UserError(f"{above}: is a file, so the folder {path} cannot be made")
    return path


def refuse_input_overwrite(outputs: Iterable[PathLike], inputs: Iterable[PathLike | None], flag: str = "") -> None:
    """UserError when an output would replace an input: the same file (also through a link) or a
    folder that holds an input. `outputs` are the files (or folders to replace) a command will write."""
    by_key: dict = {}
    for p in inputs:
        if p is None or str(p) == "" or str(p) == "-":
            continue
        real = os.path.realpath(p)
        for key in [real, *map(str, Path(real).parents)]:
            by_key.setdefault(key, p)
        with contextlib.suppress(OSError):
            st = os.stat(p)
            by_key.setdefault((st.st_dev, st.st_ino), p)
    if not by_key:
        return
    for out in outputs:
        if out is None or str(out) == "-":
            continue
        hit = by_key.get(os.path.realpath(out))
        if hit is None:
            with contextlib.suppress(OSError):
                st = os.stat(out)
                hit = by_key.get((st.st_dev, st.st_ino))
        if hit is not None:
            where = f" ({flag})" if flag else ""
            same = os.path.realpath(hit) == os.path.realpath(out) or not Path(out).is_dir()
            what = f"is the input {hit}" if same else f"holds the input {hit}"
            raise UserError(f"{out}: output{where} {what}; refusing to overwrite an input (choose another output)")


def check_writable(path: PathLike, flag: str = "") -> None:
    """One line when the folder `path` (or, when it does not exist yet, the nearest existing folder
    above it) cannot be written: a read-only or immutable folder, or one of another user. `os.access`
    asks the kernel, so it holds for root too (root may write anywhere except on an immutable folder or
    a read-only file system, which it reports)."""
    path = Path(path)
    here = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if here is None or not here.is_dir():
        return  # output_folder / output_file say what is wrong
    if not os.access(here, os.W_OK | os.X_OK):
        where = f" ({flag})" if flag else ""
        made = "" if here == path else f", so {path} cannot be made there"
        raise UserError(f"{here}: folder is not writable{made}{where}")


# ------------------------------------------------------------------------------------ manifest

def _parse(text: str, data: dict | None = None) -> dict:
    """The manifest's lines into {"kind": ..., "files": {name: {"size", "mtime_ns"}}} (added to `data`);
    lines that are not whole records (a torn last line, damage) are skipped."""
    data = data if data is not None else {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # damaged (nested too deeply: jsonio's reader sits above this module)
            continue
        if not isinstance(rec, dict):
            continue
        if isinstance(rec.get("kind"), str):
            data["kind"] = rec["kind"]
        if isinstance(rec.get("name"), str) and isinstance(rec.get("size"), int) and isinstance(rec.get("mtime_ns"), int):
            data.setdefault("files", {})[rec["name"]] = {"size": rec["size"], "mtime_ns": rec["mtime_ns"]}
    return data


# folder -> (the manifest's inode and size when read, what it says): appends of this process keep it current,
# so writing many files into one folder reads its manifest once, not once per file
_cache: dict[str, tuple[tuple[int, int, int], dict]] = {}


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def read_manifest(folder: PathLike) -> dict:
    """The manifest of `folder`: {"kind": ..., "files": {...}}, or {} when it has none (or an unreadable one).

    The manifest is JSON lines, one record per file written (`{"name", "size", "mtime_ns"}`; the last one
    of a name counts) and `{"kind": ...}`, appended under an flock of the file itself: cheap for a run that
    writes many files, safe for processes that record into one folder at once, and a torn last line (a
    kill in mid-append) costs only that record."""
    real = os.path.realpath(folder)
    try:
        with open(os.path.join(real, MANIFEST), encoding="utf-8", errors="replace") as f:
            fcntl.flock(f, fcntl.LOCK_SH)  # no append while it is read
            key = _key(os.fstat(f.fileno()))
            hit = _cache.get(real)
            if hit is not None and hit[0] == key:
                return hit[1]
            data = _parse(f.read())
            _cache[real] = (key, data)
            return data
    except OSError:
        return {}


def _append(folder: str, records: list[dict]) -> None:
    """Append `records` to the manifest of `folder` (made if missing), under an flock of the manifest."""
    fd = os.open(os.path.join(folder, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = _key(os.fstat(fd))
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        os.write(fd, text.encode("utf-8"))
        hit = _cache.get(folder)
        if hit is not None and hit[0] == before:  # nobody else wrote since it was read: keep it current
            _cache[folder] = (_key(os.fstat(fd)), _parse(text, hit[1]))
    finally:
        os.close(fd)  # closing drops the flock


def _compact(folder: str, limit: int = 1 << 20) -> None:
    """Rewrite a manifest longer than `limit` bytes with one line per file (a folder written into again and
    again); done when a command claims the folder, so appends stay cheap."""
    path = os.path.join(folder, MANIFEST)
    try:
        if os.path.getsize(path) <= limit:
            return
        with open(path, "r+", encoding="utf-8", errors="replace") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            data = _parse(f.read())
            lines = ([{"kind": data["kind"]}] if data.get("kind") else []) + \
                [{"name": n, **e} for n, e in data.get("files", {}).items() if os.path.isfile(os.path.join(folder, n))]
            f.seek(0)
            f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
            f.truncate()
        _cache.pop(folder, None)
    except OSError:
        pass


def _rel(path: Path, root: str) -> str:
    return os.path.relpath(os.path.join(os.path.realpath(path.parent), path.name), root)


def _root_of(path: Path) -> str | None:
    """The folder whose manifest speaks for `path`: the nearest folder claimed in this process, else
    the file's own folder when it has a manifest."""
    claim = claim_of(path)
    if claim is not None:
        return claim.real
    parent = os.path.realpath(path.parent)
    return parent if os.path.isfile(os.path.join(parent, MANIFEST)) else None


def ours(path: PathLike, root: str | None = None) -> bool:
    """Whether the existing file `path` is one vislearn wrote and nobody changed since (its record in
    the manifest of `root`, default the folder that speaks for it, matches its size and mtime)."""
    path = Path(path)
    root = root if root is not None else _root_of(path)
    if root is None:
        return False
    entry = read_manifest(root).get("files", {}).get(_rel(path, root))
    try:
        st = os.stat(path)
    except OSError:
        return False
    return isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns


def record(path: PathLike, root: str | None = None, kind: str | None = None, stat_of: PathLike | None = None) -> None:
    """Note the file `path`, just written by vislearn, in the manifest that speaks for it (if any; or
    that of `root`). `atomic_path` calls it; a writer that publishes a file another way calls it itself.

    `stat_of`: the file whose size and mtime to note, where `path` is not there yet: `atomic_path` notes its
    temporary file (a rename keeps both) before the rename, so a run killed between the two leaves a file
    that is still ours, not one a re-run must refuse."""
    path = Path(path)
    root = root if root is not None else _root_of(path)
    if root is None:
        return
    if kind is None:
        claim = claim_of(path)
        kind = claim.kind if claim is not None else None
    try:
        st = os.stat(stat_of if stat_of is not None else path)
        records = [{"name": _rel(path, root), "size": st.st_size, "mtime_ns": st.st_mtime_ns}]
        if kind and read_manifest(root).get("kind") != kind:
            records.insert(0, {"kind": kind})
        _append(root, records)
    except OSError:
        pass  # the file is written; without its record it only asks for --overwrite next time


def before_write(path: PathLike) -> None:
    """`atomic_path`'s last guard, for a file the command's claim did not name: in a claimed folder an
    existing file that is not ours is replaced only when the claim was given `overwrite`."""
    path = Path(path)
    claim = claim_of(path)
    if claim is None or claim.overwrite or not path.is_file() or _rel(path, claim.real) in claim.adopted \
            or ours(path, claim.real):
        return
    raise UserError(f"{path}: exists and was not written by vislearn (or changed since); pass --overwrite to replace it")


# -------------------------------------------------------------------------------------- claims

_claims: dict[str, "Claim"] = {}  # real path of a claimed folder -> its claim (this process)


def claim_of(path: PathLike) -> "Claim | None":
    """The claim of the nearest claimed folder holding the file `path`, if any."""
    if not _claims:
        return None
    folder = os.path.realpath(Path(path).parent)
    while True:
        if folder in _claims:
            return _claims[folder]
        up = os.path.dirname(folder)
        if up == folder:
            return None
        folder = up


@dataclass
class Claim:
    """A folder a command writes into (`claim_folder`)."""

    path: Path
    real: str
    kind: str | None
    flag: str
    overwrite: bool = False
    locked: bool = False
    created: list[Path] = field(default_factory=list)
    owner: bool = True  # False: the folder was already claimed in this process (this claim adds checks only)
    adopted: set[str] = field(default_factory=set)  # files without a record taken as ours (`check(adopt=True)`)

    def check(self, names: Iterable[str], overwrite: bool = False, inputs: Iterable[PathLike | None] = (),
              adopt: bool = False) -> None:
        """The files `names` (relative to the folder) that the command will write: none may be an input,
        and an existing one that is not ours is refused unless `overwrite`. `adopt`: files without any
        record count as ours (a run written before manifests existed, which the command recognised as
        its own); a record that no longer matches still needs `overwrite`."""
        names = list(names)
        refuse_input_overwrite([self.path / n for n in names], inputs, self.flag)
        if overwrite:
            if self.owner:
                self.overwrite = True
            return
        files = read_manifest(self.real).get("files", {})
        strangers = [n for n in names if (self.path / n).is_file() and not ours(self.path / n, self.real)
                     and not (adopt and _rel(self.path / n, self.real) not in files)]
        if not strangers:
            if adopt and self.owner:  # nothing is recorded before the command writes them
                self.adopted |= {_rel(self.path / n, self.real) for n in names if (self.path / n).is_file()}
            return
        if len(strangers) == 1:
            raise UserError(f"{self.path / strangers[0]}: exists and was not written by vislearn (or changed since); "
                            f"pass --overwrite to replace it")
        more = f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        raise UserError(f"{self.path}: holds {', '.join(strangers[:3])}{more} that vislearn did not write (or that "
                        f"changed since); pass --overwrite to replace them")

    def release(self) -> None:
        """The end of the claim: the lock goes, a folder made only for it goes when it stayed empty."""
        if not self.owner:
            return
        if _claims.get(self.real) is self:
            del _claims[self.real]
        if self.locked:
            self.locked = False
            unlock_folder(self.real)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: nothing was written
        self.created = []


def _make_folder(path: Path) -> list[Path]:
    """mkdir -p `path`; the folders it made, outermost first."""
    missing = [p for p in [path, *path.parents] if not p.exists()][::-1]
    made = []
    try:
        for p in missing:
            p.mkdir()
            made.append(p)
    except FileExistsError:
        pass
    except OSError:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    return made


def claim_folder(path: PathLike, names: Iterable[str] = (), *, kind: str | None = None, overwrite: bool = False,
                 inputs: Iterable[PathLike | None] = (), flag: str = "--out", lock: bool = False,
                 adopt: bool = False) -> Claim:
    """Claim the output folder `path` before the work (changes nothing when it refuses):

    - a folder (not a file), writable (`check_writable`);
    - with `lock`, made if missing and locked (`vislearn.common.lock`): a second writer is refused;
    - with a `kind` (the command, e.g. "video train"), not the folder of another command;
    - `names`: the files it will write (`Claim.check`: not inputs; strangers need `overwrite`).

    Until the claim ends, files written below `path` are recorded in its manifest."""
    path = output_folder(path, flag)
    check_writable(path, flag)
    real = os.path.realpath(path)
    outer = _claims.get(real)
    claim = Claim(path, real, kind if outer is None else (outer.kind or kind), flag, owner=outer is None)
    try:
        if outer is None and lock:
            claim.created = _make_folder(path)
            lock_folder(path, flag)
            claim.locked = True
        if outer is None:
            _compact(real)
        if kind is not None:
            other = read_manifest(real).get("kind") or (outer.kind if outer is not None else None)
            if other and other != kind:
                held = [n for n in names if (path / n).exists()]
                what = f" ({', '.join(held)} are its own)" if held else ""
                raise UserError(f"{path}: holds the outputs of `vislearn {other}`{what}; `vislearn {kind}` does not "
                                f"write there: choose another {flag}")
        claim.check(names, overwrite, inputs, adopt)
    except BaseException:
        claim.release()
        raise
    if outer is None:
        _claims[real] = claim
    return claim


def claim_file(path: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike | None] = (),
               flag: str = "--out") -> Path:
    """Claim a single output file before the work: a file name (not a folder), not one of `inputs`, in a
    writable folder; an existing file is replaced only with `overwrite` (the command's --overwrite) or
    when the manifest of its folder records it as ours."""
    path = output_file(path, flag)
    refuse_input_overwrite([path], inputs, flag)
    check_writable(path.parent, flag)
    if path.exists() and not overwrite and not ours(path):
        raise UserError(f"{path}: exists; pass --overwrite to replace it")
    return path


@contextlib.contextmanager
def session() -> Iterator[None]:
    """The claims made inside the block end with it (`run_main` wraps every command in one)."""
    before = set(_claims)
    try:
        yield
    finally:
        for real in [r for r in _claims if r not in before]:
            _claims[real].release()
