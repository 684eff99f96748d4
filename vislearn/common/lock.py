"""One writer per output folder: the run-folder lock.

`lock_folder(path)` takes an exclusive, non-blocking `flock` on the folder itself (its directory file
descriptor: no lock file is made, nothing in the folder changes). A second process that asks for the
same folder is refused at once with one line naming the folder and, where /proc/locks tells, the pid
that holds it. The OS drops the lock when its holder ends in any way (also SIGKILL), so a killed run
resumes without anything to clean up. Within one process the lock is re-entrant (a count): a command
that trains several stages in one folder tree locks each folder once per claim.

Where the file system has no flock (some network file systems) the folder is written unlocked.
Processes forked while a lock is held share it (the lock belongs to the open file, which they inherit);
data-loader workers do, which is what a run wants.
"""
from __future__ import annotations

import errno
import fcntl
import os

from .errors import UserError

_held: dict[str, list] = {}  # real path -> [fd or None (no flock here), count]
_NO_FLOCK = {errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}


def holder(path: str | os.PathLike) -> int | None:
    """The pid holding an flock on the folder `path` (from /proc/locks), or None when unknown."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":  # "->": a waiter, not the holder
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want and int(parts[4]) > 0:
                return int(parts[4])
        except ValueError:
            continue
    return None


def lock_folder(path: str | os.PathLike, flag: str = "") -> None:
    """Take the lock of the existing folder `path`, or raise a one-line UserError when another process holds it."""
    real = os.path.realpath(path)
    if real in _held:
        _held[real][1] += 1
        return
    fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = holder(real)
        who = f"another process (pid {pid})" if pid is not None and pid != os.getpid() else "another process"
        instead = f"choose another {flag}" if flag else "write elsewhere"
        raise UserError(f"{path}: {who} is writing into this folder; wait for it to end or {instead}") from None
    except OSError as e:
        os.close(fd)
        if e.errno not in _NO_FLOCK:
            raise
        fd = None  # no flock on this file system: written unlocked
    _held[real] = [fd, 1]


def unlock_folder(path: str | os.PathLike) -> None:
    """Give back one `lock_folder` of `path` (the lock goes when the count reaches 0)."""
    real = os.path.realpath(path)
    entry = _held.get(real)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[real]
        if entry[0] is not None:
            os.close(entry[0])  # closing the descriptor drops the flock


def locked_here(path: str | os.PathLike) -> bool:
    """Whether this process holds the lock of `path`."""
    return os.path.realpath(path) in _held
