"""Shared command-line plumbing: user mistakes and file-system failures become one line and exit code 2.

Every command of the project (`vislearn <family> <command>`, dispatched by `dispatch` from the family's
list of `Command`s) runs its work through `run_main` (most through `command`, which also parses the
arguments):
- a UserError (bad data, config key, flag, file) -> `error: <message>` on stderr, exit 2;
- an OSError (disk full, file size limit, permission, a folder where a file is expected or the
  reverse, a missing file) -> `error: <file>: <what happened>`, exit 2;
- Ctrl-C -> `interrupted`, exit 130 (also while a command's modules are imported: `dispatch` and the
  top-level `vislearn` catch it there);
- stdout's reader gone (`vislearn ... | head`) -> nothing more is printed, exit 141 (128 + SIGPIPE, what a
  shell reports for a Unix tool stopped by a closed pipe);
- printing never fails on the terminal's encoding (`PYTHONIOENCODING=ascii`, a C locale): characters it
  lacks are written as backslash escapes (`safe_stdio`);
- anything else is a bug: its traceback is kept, exit 1.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import io
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import UserError
from .malloc import retain_freed_memory
from .text import printable
from .outputs import session

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 128 + 13  # 141: a shell's code for a tool stopped by SIGPIPE (`... | head`)

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
    from. (The video decoders' own lines are silenced where they are loaded, `vislearn.common.video`.)"""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def safe_stdio() -> None:
    """stdout and stderr write what their encoding lacks as backslash escapes (`\\U0001f600`) instead of
    raising UnicodeEncodeError: a class name in another script never stops a command that prints it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError, io.UnsupportedOperation):
                pass


def say(message: str) -> None:
    """One line on stderr; nothing when stderr is gone too (`2>&1 | head`)."""
    try:
        print(message, file=sys.stderr)
    except (OSError, ValueError):
        pass


def stdout_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has gone: its write end reports an error or hang-up."""
    try:
        fd = sys.stdout.fileno()
        import select

        poll = select.poll()
        poll.register(fd, 0)  # errors and hang-ups are always reported
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


def quit_on_closed_stdout() -> int:
    """After a BrokenPipeError on stdout: point stdout at /dev/null (what is still buffered goes nowhere, so
    Python's flush at exit is silent) and return 141, as Python's documentation of SIGPIPE advises."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        pass
    return EXIT_BROKEN_PIPE


def guarded(work: Callable[[], int | None]) -> int:
    """The guard of an entry point, around everything it imports and runs: `safe_stdio`, Ctrl-C -> `interrupted`
    and 130, stdout's reader gone -> quietly 141. (`run_main` does the same, with one line for user mistakes.)"""
    safe_stdio()
    try:
        try:
            code = int(work() or 0)
        except SystemExit:  # argparse's --help and usage errors: what they printed is flushed here too
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a reader that has gone shows here, not in Python's flush at exit
        return code
    except KeyboardInterrupt:
        say("interrupted")
        exit_interrupted()
    except BrokenPipeError:
        if stdout_gone():
            return quit_on_closed_stdout()
        raise


def exit_interrupted() -> None:
    """Exit with 130 now. A Ctrl-C that lands in Python code run from C during an import (torch runs some)
    leaves CPython's "unhandled KeyboardInterrupt" flag set even though it was handled here, and the
    interpreter would then kill itself with SIGINT on the way out (exit -2): so flush and leave at once.
    Nothing to clean up: the command had not started its work (`run_main` handles a Ctrl-C during work)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_INTERRUPTED)


def run_main(main: Callable[[], int | None]) -> int:
    """Call `main` and return its exit code; user mistakes and OS errors print one line and return 2."""
    safe_stdio()
    try:
        retain_freed_memory()  # every command here runs tensor loops: keep their buffers (vislearn.common.malloc)
        quiet_libraries()
        with session():  # the output folders the command claims (and their locks) end with it
            code = int(main() or 0)
        sys.stdout.flush()  # a reader that has gone shows here, not in Python's flush at exit
        return code
    except UserError as e:  # messages quote names from files: `printable` (no terminal escapes, one line)
        say(f"error: {printable(str(e))}")
        return EXIT_USAGE
    except BrokenPipeError as e:
        if stdout_gone():
            return quit_on_closed_stdout()
        say(f"error: {printable(os_error_message(e))}")
        return EXIT_USAGE
    except OSError as e:
        say(f"error: {printable(os_error_message(e))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
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
    # importing a command's module takes seconds (torch): Ctrl-C there is `interrupted` too (`guarded`)
    return guarded(lambda: importlib.import_module(by_name[argv[0]].module).main(argv[1:]))
