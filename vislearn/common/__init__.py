"""Plumbing every package shares: the user-error type (`errors`), one-line CLI errors (`cli.run_main`),
atomic files and folders and the guard against writing onto an input (`files`), the output rules
(`outputs`: only our own files are replaced, checks before the work) and the run-folder lock (`lock`),
JSON I/O with a nesting limit (`jsonio`), checked config settings (`validate`: what each dataclass field takes,
one `validate(cfg)`, `base:` chains), text from files made safe to print (`text.printable`),
checkpoint and weight-file I/O (`checkpoint`), freezing parts of a network (`freeze`); these two import
torch: load them only where they are needed.

The lowest layer: `datasets`, `splits`, `tracking` and `actions` import it; it imports none of them.
"""
