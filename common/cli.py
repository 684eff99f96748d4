"""Shared command-line plumbing: user mistakes become one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (`prog: error: ... (see --help)`) and exit code 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def run_main(main: Callable[[], int | None]) -> int:
    """Call `main`; a UserError (bad input) or a missing file prints `error: ...` and returns 2."""
    try:
        return int(main() or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        print(f"error: {e.filename}: file not found" if e.filename else f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
