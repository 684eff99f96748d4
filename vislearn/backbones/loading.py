"""Loading a local weight file into an encoder: strict on keys and shapes, so a file for another
architecture never loads in part (one line names what does not fit). Every family's encoders load
through here; the file is read by `vislearn.common.checkpoint.read_state_dict` (weights only)."""
from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn

from vislearn.common.checkpoint import read_state_dict
from vislearn.common.errors import UserError

HEAD_PREFIXES = ("fc.", "head.", "classifier.")  # classification heads of torchvision models


# ----------------------------------------------------------------------------- weights
def _preview(keys: Iterable[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_state_checked(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    source: str = "<state dict>",
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Load `state` into `module` with a strict key and shape check.

    Keys under `ignore_prefixes` are skipped on both sides (e.g. a classification head of a
    different size). If no key matches but the file holds a whole scene model (keys under
    'backbone.'), its trunk part is used. Raises a UserError (a ValueError) naming the file and the
    missing / unexpected / mis-shaped keys: a file for another architecture never loads in part.
    """
    ignore = tuple(ignore_prefixes)
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    if not own.keys() & state.keys() and any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"{source}: weights do not fit {type(module).__name__}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:5])}")
        raise UserError("; ".join(parts))
    module.load_state_dict(state, strict=False)


def load_backbone_weights(
    model: nn.Module, path: str | os.PathLike, ignore_prefixes: Iterable[str] = HEAD_PREFIXES
) -> nn.Module:
    """Load a local checkpoint file into `model` (a trunk, or any module) strictly, except
    for classification-head keys. Returns `model`."""
    load_state_checked(model, read_state_dict(path), os.fspath(path), ignore_prefixes)
    return model
