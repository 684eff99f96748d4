"""Plumbing every package shares: the user-error type, CLI helpers, JSON/checkpoint/weight-file I/O.

The lowest layer: `datasets`, `splits`, `tracking` and `actions` import it; it imports none of them.
"""
