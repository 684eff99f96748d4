"""What the tests of user-facing guarantees share: a CLI called in-process, the one line a user mistake
prints, a snapshot of a tree ("nothing changed" is equality), and a folder made unwritable even for root."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest


def one_line(err: str) -> str:
    """The single line a user mistake prints (no traceback, no second line)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def call(main, *argv) -> tuple[int, str, str]:
    """Run a CLI's main in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def snapshot(*roots: Path) -> dict:
    """Every file and folder under `roots` with its size and modification time."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (0, 0) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


@contextlib.contextmanager
def unwritable(folder: Path):
    """`folder` unwritable for this process: chmod 0o555 for a user; as root, whom modes do not stop, the
    immutable attribute (chattr +i), skipped where it cannot be set."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root and chattr +i is not available here: no way to make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def default_sigint() -> None:
    """`preexec_fn` for a child that a test interrupts: Ctrl-C's default disposition, as at a terminal. A
    shell's background job (`cmd &`, as a CI runner may start the tests) ignores SIGINT, and Python then
    installs no KeyboardInterrupt handler in its children."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
