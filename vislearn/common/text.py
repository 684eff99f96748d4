"""Text from files, made safe to print: `printable(s)`.

Class names, video ids and paths printed by the commands come from files (labels, checkpoints, box JSON,
folders) that anyone may have written. A control character in them reaches the terminal as a command:
an ANSI escape recolours or clears the screen, rewrites the title, or hides the rest of the line; a
carriage return or a bidi override makes the line read other than it is; a newline splits one line in
two. `printable` writes each such character as its escape (`\\x1b`, `\\n`, `\\u202e`), so the text stays
readable and distinct names stay distinct. Every other character, any script or emoji, is kept.
"""
from __future__ import annotations

import re

# C0 and C1 control characters and DEL; bidi embeddings, overrides and isolates; line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape(m: re.Match) -> str:
    c = m.group()
    return repr(c)[1:-1] if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(value: object) -> str:
    """`str(value)` with every control character (terminal escapes, newlines, bidi controls) written as its
    backslash escape; everything else as it is."""
    s = value if isinstance(value, str) else str(value)
    if _UNSAFE.search(s) is None:
        return s
    return _UNSAFE.sub(_escape, s)
