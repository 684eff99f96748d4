"""`vislearn pretrain convert CKPT --out encoder.pth`: an official MoCo or ReSim ResNet-50 checkpoint as an encoder
checkpoint of `resnet50_ms` (`vislearn.backbones.encoders`), which every family loads by path (the detector with
`train-detector --arch resnet50_v2 --backbone-weights encoder.pth`, the probe, ...).

Layouts read (the reference code's own, so a released file converts as it is):
- pre-training checkpoint (facebookresearch/moco `main_moco.py`, Tete-Xiao/ReSim the same):
  `{"epoch", "arch", "state_dict", "optimizer"}`, `state_dict` keys `module.encoder_q.<torchvision resnet50 names>`,
  the projection head `module.encoder_q.fc.*` (MoCo v1: a Linear; v2 and ReSim: `fc.0`, `fc.2`), the key encoder
  `module.encoder_k.*`, the negatives `module.queue`, `module.queue_ptr` (also without `module.`). ReSim's
  `encoder_q` also holds its detectron2-style pyramid (`fpn_lateral{5,4,3}`, `fpn_output{4,3}`): it has no output
  convolution on C5, which torchvision's pyramid has, so it is left out like the head (the body is what ReSim
  transfers: its detection results fine-tune a fresh pyramid).
- "Detectron Backbone" files (`detection/convert-pretrain-to-detectron2.py` of both repositories): `{"model":
  {name: numpy array}, "__author__": "MOCO", ...}` with detectron2 names (`stem.conv1.weight`, `stem.conv1.norm.*`,
  `res2.0.conv1.*`, `res2.0.shortcut.*`, `res2.0.shortcut.norm.*`, the head `stem.fc.*`, ReSim's pyramid
  `backbone.fpn_*`): ReSim's script writes it with `torch.save`, MoCo's with `pickle`; both read here without
  running code from the file (numpy arrays are the only objects allowed besides plain data).
Only `encoder_q` is kept; the rest must fit `resnet50_ms`'s body exactly (`load_state_checked`): a file of another
architecture, or a truncated one, is refused in one line and nothing is written.
"""
from __future__ import annotations

import argparse
import importlib
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from vislearn.backbones.dense import resnet50_ms
from vislearn.backbones.encoders import EncoderInfo, encoder_checkpoint
from vislearn.backbones.loading import load_state_checked
from vislearn.common.checkpoint import read_torch_file, save_checkpoint
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.outputs import claim_file

DROPPED = {"head": ("fc.",), "pyramid": ("fpn_",)}  # encoder_q parts that are not the body


# ----------------------------------------------------------------------------- reading
class _ArraysOnly(pickle.Unpickler):
    """A pickle of plain data and numpy arrays (MoCo's detectron2 files); any other object is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            module = module.replace("numpy.core.", "numpy._core.")  # numpy 1's name of the same function
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _numpy_globals() -> list:
    """What torch.load(weights_only=True) must also accept for a torch file of numpy arrays (ReSim's detectron2
    files), under numpy 1's and 2's names."""
    reconstruct = np._core.multiarray._reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8)]
    return [np.ndarray, np.dtype, *dtypes, reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct")]


def read_official(path: str | Path) -> dict:
    """The file's top-level object (a dict), read without running code from it."""
    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
    if not zipped:  # a plain pickle (MoCo's detectron2 file), or a legacy torch file (its first pickle: a number)
        try:
            with open(path, "rb") as f:
                obj = _ArraysOnly(f).load()
        except pickle.UnpicklingError as e:
            if "not allowed" in str(e):
                raise UserError(f"{path}: holds Python objects besides arrays and plain data ({e}); loading them "
                                "could run code") from None
            raise UserError(f"{path}: truncated, corrupt, or not a MoCo / ReSim checkpoint") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError):
            raise UserError(f"{path}: truncated, corrupt, or not a MoCo / ReSim checkpoint") from None
        if isinstance(obj, dict):
            return obj
    with torch.serialization.safe_globals(_numpy_globals()):
        obj = read_torch_file(path, "MoCo / ReSim checkpoint")
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a dict (a MoCo / ReSim checkpoint), found {type(obj).__name__}")
    return obj


def _tensors(state: dict, path) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.array(v))  # a copy, contiguous, of the same shape (0-d stays 0-d)
        if not isinstance(v, torch.Tensor):
            raise UserError(f"{path}: {k} is a {type(v).__name__}, not a tensor (not a weights file)")
        out[str(k)] = v
    return out


# ----------------------------------------------------------------------------- layouts
def detectron2_to_torchvision(name: str) -> str:
    """The inverse of `convert-pretrain-to-detectron2.py`'s renaming (stem./resN/convN.norm/shortcut)."""
    if name.startswith("backbone.fpn"):
        return name[len("backbone."):]
    name = name.removeprefix("stem.")
    name = re.sub(r"^res(\d)\.", lambda m: f"layer{int(m.group(1)) - 1}.", name)
    name = name.replace("shortcut.norm.", "downsample.1.").replace("shortcut.", "downsample.0.")
    return re.sub(r"conv(\d)\.norm\.", r"bn\1.", name)


def encoder_q_state(obj: dict, path) -> tuple[dict[str, torch.Tensor], str]:
    """encoder_q's tensors under torchvision's names, and the layout they came in."""
    state = obj.get("state_dict", obj.get("model", obj))
    if not isinstance(state, dict):
        raise UserError(f"{path}: no state dict under 'state_dict' or 'model'")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    query = {k[len("encoder_q."):]: v for k, v in state.items() if k.startswith("encoder_q.")}
    if query:
        return _tensors(query, path), "moco"
    if "stem.conv1.weight" in state:
        return _tensors({detectron2_to_torchvision(k): v for k, v in state.items()}, path), "detectron2"
    keys = ", ".join(sorted(state)[:4])
    raise UserError(f"{path}: neither a MoCo / ReSim pre-training checkpoint (no encoder_q tensors) nor a detectron2 "
                    f"backbone (no stem.conv1.weight); its keys begin {keys}")


def convert(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The `resnet50_ms` encoder of an official file, and what was dropped (counts) and found."""
    obj = read_official(path)
    query, layout = encoder_q_state(obj, path)
    dropped = {part: sorted(k for k in query if k.startswith(prefixes)) for part, prefixes in DROPPED.items()}
    body = {f"body.{k}": v for k, v in query.items() if not k.startswith(sum(DROPPED.values(), ()))}
    model = resnet50_ms()
    load_state_checked(model, body, str(path))
    found = {"layout": layout, "tensors": len(body), "dropped": {k: len(v) for k, v in dropped.items()},
             "epoch": obj.get("epoch"), "arch": obj.get("arch"), "method": "resim" if dropped["pyramid"] else "moco"}
    return model, found


# ----------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn pretrain convert", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="official MoCo / ReSim file (.pth.tar, or a detectron2 "
                                                      ".pkl/.pth backbone)")
    p.add_argument("--out", required=True, help="encoder checkpoint to write (e.g. encoder.pth)")
    p.add_argument("--method", choices=("resim", "moco"),
                   help="what trained it, recorded in the file's source (default: resim when encoder_q holds ReSim's "
                        "pyramid, else moco)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    out = claim_file(args.out, overwrite=args.overwrite, inputs=[args.checkpoint])
    model, found = convert(args.checkpoint)
    method = args.method or found["method"]
    source = {"method": method, "file": str(Path(args.checkpoint).resolve()), "layout": found["layout"]}
    source.update({k: found[k] for k in ("epoch", "arch") if found[k] is not None})
    save_checkpoint(encoder_checkpoint(model, EncoderInfo("resnet50_ms", {}, 224, source=source)), out)
    left = ", ".join(f"{part} ({n} tensors)" for part, n in found["dropped"].items() if n)
    print(f"wrote {out}: resnet50_ms body, {found['tensors']} tensors of encoder_q ({method}, {found['layout']} "
          f"layout{'' if found['epoch'] is None else ', epoch ' + str(found['epoch'])})"
          + (f"; left out: {left}" if left else ""))
    return 0


main = command(build_parser, run)
