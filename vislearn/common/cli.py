"""Shared command-line plumbing: user mistakes and file-system failures become one line and exit code 2.

Every command of the project (`vislearn <family> <command>`, dispatched by `dispatch` from the family's
list of `Command`s) runs its work through `run_main` (most through `command`, which also parses the
arguments):
- a UserError (bad data, config key, flag, file) -> `error: <message>` on stderr, exit 2;
- an OSError (disk full, file size limit, permission, a folder where a file is expected or the
  reverse, a missing file) -> `error: <file>: <what happened>`, exit 2;
- Ctrl-C -> `interrupted`, exit 130;
- anything else is a bug: its traceback is kept, exit 1.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import UserError
from .malloc import retain_freed_memory
from .outputs import session

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (the file size limit, `ulimit -f`, was reached)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOTDIR: "a part of this path is a file, expected a folder",
    errno.ENOENT: "file not found",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "folder is not empty",
}


def os_error_message(e: OSError) -> str:
    """One line for an OSError: the file(s) it names and what happened, in words."""
    reason = _REASONS.get(e.errno) or e.strerror or str(e) or type(e).__name__
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    if not names:  # e.g. FileNotFoundError("scene checkpoint ... not found"): its own words
        plain = e.errno in _REASONS and e.strerror in (None, os.strerror(e.errno))
        return reason if plain else (e.strerror or str(e) or reason)
    return f"{' -> '.join(names)}: {reason}"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (`prog: error: ... (see --help)`) and exit code 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (slots, threads, counts), else a usage error."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def command(build_parser: Callable[[], argparse.ArgumentParser],
            work: Callable[[argparse.Namespace], int | None]) -> Callable[[list[str] | None], int]:
    """The `main(argv=None) -> exit code` of a CLI: parse `argv` with `build_parser()` (a usage error is one
    line, exit 2), then `work(args)` through `run_main`."""
    def main(argv: list[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        return run_main(lambda: work(args))
    return main


def quiet_libraries() -> None:
    """Keep library chatter from the terminal, so that a mistake stays one line: matplotlib's warnings about
    glyphs missing from its font (a class name in another script) and about font families it falls back
    from. (The video decoders' own lines are silenced where they are loaded, `vislearn.video.data.video`.)"""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def run_main(main: Callable[[], int | None]) -> int:
    """Call `main` and return its exit code; user mistakes and OS errors print one line and return 2."""
    retain_freed_memory()  # every command here runs tensor loops: keep their buffers (vislearn.common.malloc)
    quiet_libraries()
    try:
        with session():  # the output folders the command claims (and their locks) end with it
            return int(main() or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# ----------------------------------------------------------------------------- command families
@dataclass(frozen=True)
class Command:
    """One `vislearn <family> <name>`: the module whose `main(argv) -> int` runs it (imported only when
    it runs, so listing the commands loads no torch)."""

    name: str
    module: str
    help: str


def command_table(commands: list[Command], indent: str = "  ") -> str:
    width = max(len(c.name) for c in commands) + 2
    return "\n".join(f"{indent}{c.name:<{width}}{c.help}" for c in commands)


def dispatch(prog: str, description: str, commands: list[Command], argv: list[str] | None = None) -> int:
    """`prog COMMAND [args...]`: run one command's `main(args)`. `--help` (or nothing) lists the commands."""
    argv = sys.argv[1:] if argv is None else list(argv)
    listing = f"usage: {prog} COMMAND [ARGS ...]\n\n{description}\n\ncommands:\n{command_table(commands)}\n\n" \
              f"`{prog} COMMAND --help` explains one."
    if not argv or argv[0] in ("-h", "--help"):
        print(listing, file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    by_name = {c.name: c for c in commands}
    if argv[0] not in by_name:
        print(f"{prog}: error: unknown command {argv[0]!r}; choose from {', '.join(by_name)} (see --help)",
              file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(by_name[argv[0]].module)
    return int(module.main(argv[1:]) or 0)
