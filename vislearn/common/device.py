"""One reading of a device name for every family: `auto`, `cpu`, `cuda`, `cuda:N`.

A device that cannot be used here (no GPU, a GPU index past the last one, a name torch does not know)
is a user mistake, found before any work starts: a UserError naming the value and the accepted forms,
which the CLIs print as one line (exit 2), instead of a traceback from the first tensor moved there.
"""
from __future__ import annotations

import re

import torch

from vislearn.common.errors import UserError

ACCEPTED = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str | None, local_rank: int | None = None, key: str = "device") -> torch.device:
    """The torch device `spec` names. "auto" (or empty): a GPU when there is one, else the CPU. A bare
    "cuda" (and "auto" on a GPU) is GPU `local_rank` when given (a torchrun process's own GPU), else
    torch's current one; "cuda:N" is GPU N whatever the rank. `key` names the setting in errors
    ("device", "--device")."""
    name = (spec or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(name)
    if match is None:
        raise UserError(f"{key}: {spec!r} is not a device; use {ACCEPTED}")
    if not torch.cuda.is_available():
        raise UserError(f"{key}: {spec!r} asks for a GPU, but no CUDA GPU is available here; use auto or cpu")
    index = int(match.group(1)) if match.group(1) is not None else local_rank
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise UserError(f"{key}: {spec!r} asks for GPU {index}, but this machine has {count} "
                        f"(cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")
