"""Writing outputs without losing anything: atomic files and folders, and a guard for the inputs.

- `atomic_path` / `atomic_file`: an output file appears under its name only once it is complete;
  a killed or failing run (disk full, `ulimit -f`, Ctrl-C) leaves the previous file, never half a
  file, and no temporary file behind.
- `atomic_folder`: the same for a folder (a box store, a frame folder). An existing folder is
  swapped out in one step (`renameat2(RENAME_EXCHANGE)` on Linux), so a kill at any instant leaves
  the old folder or the new one; leftovers of killed runs are removed by the next run.
- `refuse_input_overwrite`: an output that would replace one of the command's inputs (the same
  file, through any link, or a folder holding an input) is refused before anything is written.
- `output_file` / `output_folder` / `input_file`: a file where a folder is expected (or the reverse),
  or a missing input, is a one-line UserError at the start of a command, not an OSError after an
  hour of work.
- `new_output_file`: a single output file (`--out F`): an existing one only with --overwrite.
What a command may replace, the run-folder lock and the checks before the work are
`vislearn.common.outputs` (which also defines `output_file`, `output_folder` and
`refuse_input_overwrite`); `atomic_path` follows its rules: in a folder the command claimed it never
replaces a file vislearn did not write (unless --overwrite), and it records every file it completes
in the folder's manifest.
Files get the usual permissions (0666/0777 less the umask), not mkstemp's private 0600/0700.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Iterable, Iterator

from . import outputs
from .errors import UserError
from .outputs import claim_file, output_file, output_folder, refuse_input_overwrite  # noqa: F401  (this module's API too)

PathLike = str | os.PathLike


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _named(e: OSError, path: Path) -> OSError:
    """The same error with the output's name when it has none (a failed write() names no file)."""
    if e.filename is not None:
        return e
    return OSError(e.errno, e.strerror or str(e), str(path))


def input_file(path: PathLike, what: str, expected: str) -> Path:
    """`path` as an existing input file: "PATH: <what> not found" or "PATH: is a folder, expected <expected>"."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected {expected}")
    return path


def new_output_file(path: PathLike, inputs: Iterable[PathLike | None], overwrite: bool, flag: str = "--out") -> Path:
    """`output_file`, never one of `inputs`, in a writable folder, and an existing file only with
    `overwrite` (the command's --overwrite) or when vislearn made it (`outputs.claim_file`)."""
    return claim_file(path, overwrite=overwrite, inputs=inputs, flag=flag)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary name beside `path` (same suffix, so writers that go by the extension work);
    it replaces `path` when the block ends without error and is removed otherwise."""
    path = output_file(path)
    outputs.before_write(path)  # in a claimed folder: never over a file vislearn did not write
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name: `remove_stale_files` tells a killed run's leftover from a live run's file
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}")
    except OSError as e:  # the output's name, not the temporary one's
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        # noted as ours before it is published: a kill between the two must not leave a file a re-run refuses
        outputs.record(path, stat_of=tmp)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise _named(e, path) from None
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`with atomic_file(p) as f: f.write(...)`: an open file whose content replaces `p` at the end."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, mode, **kwargs) as f:
                yield f
        except OSError as e:
            raise _named(e, Path(path)) from None


def write_text(path: PathLike, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def _remove(path: PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# --------------------------------------------------------------------------------- folders

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2). False where the OS or file system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: PathLike) -> list[Path]:
    """Remove what killed runs left beside `path`: `.NAME.building.PID.TAG` of dead processes (and
    `.NAME.building.TAG`, the name earlier versions used)."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f".{path.name}.building.*"):
        parts = p.name[len(path.name) + 2:].split(".")  # building, PID, TAG
        dead = len(parts) == 2 or (len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])))
        if dead:  # a folder, or what a swap put there in its place (a link, a file): never what a link points to
            _discard(p)
            removed.append(p)
    return removed


def _discard(p: Path) -> None:
    """Remove `p`: a link or a file is unlinked (what a link points to is kept), a folder removed whole."""
    if p.is_symlink() or not p.is_dir():
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(p)
    else:
        shutil.rmtree(p, ignore_errors=True)


def remove_stale_files(path: PathLike) -> list[Path]:
    """Remove the temporary files of `atomic_path(path)` that killed runs left beside `path`:
    `.STEM.PID.XXXXXXXX.tmpSUFFIX` of dead processes (and `.STEM.XXXXXXXX.tmpSUFFIX`, the name earlier
    versions used). A command calls it once before writing `path` (it lists the folder)."""
    import re

    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp{re.escape(path.suffix)}")
    removed = []
    with contextlib.suppress(OSError), os.scandir(path.parent) as it:
        for entry in it:
            m = pattern.fullmatch(entry.name)
            if m and (m.group(1) is None or not _alive(int(m.group(1)))) and not entry.is_dir(follow_symlinks=False):
                _remove(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_folder(path: PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside `path` to fill; it becomes `path` when the block ends without error.

    An existing non-empty `path` is replaced only with `replace=True` (the caller decides whether the
    user asked for it); it is exchanged with the new folder in one step, then removed.
    """
    path = output_folder(path)
    if path.is_dir() and any(path.iterdir()) and not replace:
        raise UserError(f"{path}: folder exists and is not empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = path.with_name(f".{path.name}.building.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(mode=0o777)  # the umask applies, as for any new folder (mkdtemp would give 0700)
    try:
        yield tmp
        if not path.exists():
            os.rename(tmp, path)
        elif _exchange(tmp, path):
            _discard(tmp)  # now the old folder, or a link that stood there (a leftover is removed next time)
        else:  # no atomic exchange here: move the old one aside, then the new one in
            old = path.with_name(f".{path.name}.building.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            _discard(old)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _named(e, path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_png(path: PathLike, image) -> None:
    """An RGB (HxWx3) or grey (HxW) uint8 image as a PNG, atomically (PIL imported only here)."""
    import numpy as np
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
