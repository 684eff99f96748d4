"""Checkpoint I/O shared by `actions` (training runs) and `tracking` (the detector).

- `save_checkpoint`: a plain dict written atomically, stamped with `format`/`version`; a full disk
  or a file size limit is one line ("disk full writing X; the previous checkpoint is intact") and
  leaves no temporary file.
- `read_torch_file` / `load_checkpoint` / `read_state_dict`: `torch.load(weights_only=True)` only
  (tensors and plain data: a file from elsewhere cannot run code here); a file that is not such a
  checkpoint is one line saying so, never torch's advice to retry with `weights_only=False`.
  `read_state_dict` is the one reader of weight files (pretrained trunks, detector backbones,
  whole-stream checkpoints), whatever wraps the state dict.
- `rng_state` / `set_rng_state`: Python, NumPy, torch (and CUDA) RNG states in types that load
  with `weights_only=True`, so a resumed run continues exactly.
- `load_state`: load weights strictly, or say in one line which keys and shapes do not fit.
Checkpoints written before the `format` key existed load as before.
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cli import os_error_message
from .errors import UserError
from .files import atomic_file, input_file
from .weights import check_name_hash

FORMAT = "something-else-checkpoint"
VERSION = 1


def rng_state() -> dict:
    """RNG states as tensors and plain Python values, so checkpoints load with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Recorder:
    """File wrapper that keeps the OSError of a failed write: torch.save turns it into an opaque
    RuntimeError ("unexpected pos ...")."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save atomically (temporary file, then rename): a killed or failing run keeps the previous file."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    had = path.exists()
    rec = None
    try:
        with atomic_file(path, "wb") as f:
            rec = _Recorder(f)
            torch.save(state, rec)
    except (OSError, RuntimeError) as e:
        err = e if isinstance(e, OSError) else (rec.error if rec is not None else None)
        if err is None:
            raise
        reason = os_error_message(OSError(err.errno, err.strerror)) if err.errno else str(err)
        keep = "the previous checkpoint is intact" if had else "no checkpoint was written"
        raise UserError(f"{path}: {reason} while writing the checkpoint; {keep}") from None


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint", map_location="cpu"):
    """`torch.load(weights_only=True)` with one-line errors that name the file."""
    path = input_file(path, what, f"a {what}" if what.endswith("file") else f"a {what} file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what}: {os_error_message(e)}") from None
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # torch's zip container, or a legacy pickle
        raise UserError(f"{path}: not a {what} this tool can load safely (not a PyTorch file: neither a zip "
                        "archive nor a pickle)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what}: {os_error_message(e)}") from None
    except Exception as e:  # torch raises many kinds; their text advises an unsafe retry: never show it
        unsafe = isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower()
        reason = ("it holds Python objects besides tensors and plain data, and loading those could run code"
                  if unsafe else "truncated, corrupt, or not a PyTorch file")
        raise UserError(f"{path}: not a {what} this tool can load safely ({reason})") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint dict with a 'model' entry (any version of this project's checkpoints)."""
    ckpt = read_torch_file(path, "checkpoint", map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UserError(f"{path}: not a checkpoint of this project (no 'model' entry)")
    check_format(ckpt, path)
    return ckpt


def read_state_dict(path: str | os.PathLike, what: str = "weights file") -> dict[str, torch.Tensor]:
    """A state dict from a local file: a plain one, or one under 'model' or 'state_dict' of a checkpoint
    dict (this project's, torchvision's, most others'). A DistributedDataParallel 'module.' prefix is removed.
    A file named the torchvision way (`<model>-<sha256 prefix>.pth`) must match its name (`check_name_hash`)."""
    check_name_hash(path)
    obj = read_torch_file(path, what)
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: expected a state dict (parameter name -> tensor), or a checkpoint with one "
                        "under 'model' or 'state_dict'")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_format(ckpt: dict, path: str | os.PathLike) -> None:
    fmt, version = ckpt.get("format"), ckpt.get("version")
    if fmt is None:  # written before the format key existed
        return
    if fmt != FORMAT:
        raise UserError(f"{path}: checkpoint format {fmt!r}, expected {FORMAT!r}")
    if not isinstance(version, int) or version > VERSION:
        raise UserError(f"{path}: checkpoint version {version!r} is newer than this tool reads ({VERSION})")


def _preview(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def state_mismatch(model: nn.Module, state: dict) -> str:
    """What keeps `state` from loading strictly into `model` ('' when it fits)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f"{label}: {_preview(items)}" for label, items in
             (("shapes differ (file vs model)", shapes), ("missing", missing), ("unexpected", unexpected)) if items]
    return "; ".join(parts)


def load_state(model: nn.Module, state: dict, source: str | os.PathLike) -> None:
    """`model.load_state_dict(state)` (strict), or a one-line UserError naming the keys that do not fit.

    BatchNorm's step counters (`num_batches_tracked`, unused with a momentum) may be missing: a detector
    saved when its frozen BatchNorm layers were torchvision's `FrozenBatchNorm2d` had none."""
    counters = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked") and k not in state}
    state = {**counters, **state}
    problem = state_mismatch(model, state)
    if problem:
        raise UserError(f"{source}: the weights do not fit the model ({problem})")
    model.load_state_dict(state)
