"""`vislearn` (or `python -m vislearn`): every family of the program and its commands.

`vislearn FAMILY COMMAND [ARGS ...]` runs one command (also `python -m vislearn.FAMILY COMMAND`);
`vislearn demo` runs every system's quick demo and prints one table (`make demo`)."""
from __future__ import annotations

import importlib
import sys

try:  # Ctrl-C while Python starts the program is `interrupted` and 130, as everywhere after (common.cli.guarded)
    from vislearn.common.cli import EXIT_OK, EXIT_USAGE, Command, command_table, guarded
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

# family -> the module holding its COMMANDS, TITLE and main(argv)
FAMILIES = {"video": "vislearn.video.__main__", "backbones": "vislearn.backbones.__main__",
            "pretrain": "vislearn.pretrain.__main__", "segment": "vislearn.segment.__main__",
            "control": "vislearn.control.__main__"}
TOP_COMMANDS = [Command("demo", "vislearn.demo", "every system's quick demo, one table and one report page (make demo)")]


def listing() -> str:
    lines = ["usage: vislearn FAMILY COMMAND [ARGS ...] | vislearn demo [--systems ...]", "", __doc__.split("\n\n")[0],
             "", "families and their commands:"]
    for family, module in FAMILIES.items():
        m = importlib.import_module(module)
        lines += [f"  {family}: {m.TITLE}", command_table(m.COMMANDS, indent="    ")]
    lines += ["", "commands:", command_table(TOP_COMMANDS), "", "`vislearn FAMILY COMMAND --help` explains one."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`vislearn ...`: imports and runs the family's or command's module under `guarded` (Ctrl-C while importing
    is `interrupted`, 130; a closed stdout ends quietly, 141; printing never fails on the terminal's encoding)."""
    return guarded(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(listing(), file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] in FAMILIES:
        return int(importlib.import_module(FAMILIES[argv[0]]).main(argv[1:]) or 0)
    top = {c.name: c for c in TOP_COMMANDS}
    if argv[0] in top:
        return int(importlib.import_module(top[argv[0]].module).main(argv[1:]) or 0)
    print(f"vislearn: error: unknown family or command {argv[0]!r}; choose from "
          f"{', '.join([*FAMILIES, *top])} (see --help)", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
