"""`vislearn video convert something-else CKPT --labels labels.json --out best.pt`: official weights in.

The official Something-Else code (`code/train.py` of the public release) saves
`{'epoch', 'arch', 'state_dict', 'best_loss'}` as `<arch>_<name>_latest.pth.tar` / `_best.pth.tar`, with
its models' own parameter names; a file saved from a DataParallel model has them under `module.`.
Both are accepted. The result is a checkpoint of this project (weights, class names, builder arguments,
run config) that `video.actions.evaluate`, `video.actions.infer`, `video.actions.export` and fine-tuning
(`init_checkpoint=`, `video.actions.fewshot --base`) use as they use a trained `best.pt`.

Official model (train.py `--model`)    here (`--model`, found from the keys when not given)
  coord                                  stin          official=True
  coord_latent                           stin_oie      official=True
  coord_latent_nl                        stin_oie_nl   official=True (BatchNorm frozen, as there)
  global_i3d                             i3d_r50       official=True (see `video.actions.models.i3d`)
Sizes come from the weights (feature dim C, box frames T = official num_frames // 2, classes); the number
of box slots (official `--num_boxes`, 4) cannot be read from them: `--num-slots`. The official fusion
models (`global_coord_latent*`) pool the I3D map with channels and time mixed up (a known bug); they are
refused with that reason rather than converted into something that computes otherwise.

The run config saved with the weights reproduces the official inputs where this project can: the
official slot layout (hand in the last used slot, no mask: `official_slots`), T box frames, 224 px centre
view; the I3D model reads 16 frames 2 apart (`rgb_sampler=strided`). The official evaluation view
(frames stretched to 340x256, centre 256 square) is close to, not equal to, this project's centre crop.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from vislearn.common.checkpoint import load_state, read_torch_file, save_checkpoint, state_mismatch
from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import new_output_file
from vislearn.video.data.ssv2 import class_names, load_labels

from .config import TrainConfig, apply, to_dict
from .models import create_model
from vislearn.backbones.i3d_resnet import is_official_i3d_state, official_i3d_state

OFFICIAL_NAMES = {"stin": "coord", "stin_oie": "coord_latent", "stin_oie_nl": "coord_latent_nl", "i3d_r50": "global_i3d"}


def read_official(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict (`module.` removed) and the other entries (epoch, arch, best_loss) of an official file.
    Loaded with weights_only=True: a file that would run code is refused."""
    obj = read_torch_file(path, "checkpoint")
    info = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        info = {k: v for k, v in obj.items() if k != "state_dict" and isinstance(v, (int, float, str))}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: not an official Something-Else checkpoint (expected a dict with a 'state_dict' "
                        f"of parameter tensors, as the official train.py saves)")
    return {k.removeprefix("module."): v for k, v in obj.items()}, info


def detect_model(state: dict, path) -> str:
    """Which of our models an official state dict is, from its keys."""
    if any(k.startswith(("c_coord_to_feature.", "c_box_feature_fusion.")) for k in state):
        raise UserError(f"{path}: an official fusion model (global_coord*, keys 'c_coord_to_feature...'); its "
                        f"head pools the I3D map with channels and time mixed up (an official bug this project "
                        f"does not copy), so it has no equal here: convert its STIN and I3D checkpoints instead")
    if any(k.startswith("i3D.") for k in state) and "fc.weight" in state:
        return "i3d_r50"
    if is_official_i3d_state(state):
        raise UserError(f"{path}: an official I3D trunk (e.g. the Kinetics kinetics-res50.pth), not a Something-Else "
                        f"model: give it to i3d_r50 as model_args.backbone_weights")
    if "coord_to_feature.0.weight" in state:
        if any(k.startswith("nonlocal_fusion.") for k in state):
            return "stin_oie_nl"
        return "stin_oie" if "category_embed_layer.weight" in state else "stin"
    raise UserError(f"{path}: not a model of the official code this tool knows (keys {', '.join(list(state)[:3])}, "
                    f"...); expected coord, coord_latent, coord_latent_nl or global_i3d")


def _shape(state: dict, key: str, path) -> torch.Size:
    if key not in state:
        raise UserError(f"{path}: no '{key}' in the state dict: not the model given by --model")
    return state[key].shape


def stin_from_official(state: dict, num_slots: int, path) -> tuple[dict, dict, int]:
    """(builder arguments, state dict, classes) of an official STIN checkpoint."""
    C = _shape(state, "coord_to_feature.3.weight", path)[0]
    T = _shape(state, "box_feature_fusion.0.weight", path)[1] // C
    classes = _shape(state, "classifier.4.weight", path)[0]
    return {"official": True, "feature_dim": int(C), "num_frames": int(T), "num_slots": num_slots}, state, int(classes)


def i3d_from_official(state: dict, path) -> tuple[dict, dict, int]:
    """(builder arguments, state dict, classes) of an official `global_i3d` checkpoint. The I3D part's own
    Kinetics head (`i3D.classifier`, computed but unused by that model) is left out."""
    trunk, _ = official_i3d_state({k.removeprefix("i3D."): v for k, v in state.items() if k.startswith("i3D.")})
    conv = _shape(state, "conv.weight", path)  # [512, 2048, 1, 1, 1]
    out = {f"backbone.{k}": v for k, v in trunk.items()}
    out["proj.0.weight"], out["proj.0.bias"] = state["conv.weight"].reshape(conv[0], conv[1]), state["conv.bias"]
    out["classifier.1.weight"], out["classifier.1.bias"] = state["fc.weight"], state["fc.bias"]
    unknown = [k for k in state if not k.startswith(("i3D.", "conv.", "fc."))]
    if unknown:
        raise UserError(f"{path}: keys the official global_i3d model does not have: {', '.join(unknown[:3])}")
    return {"official": True, "feature_dim": int(conv[0])}, out, int(state["fc.weight"].shape[0])


def official_config(name: str, model_args: dict, num_slots: int) -> dict:
    """The run config that feeds the converted model what the official loader fed it."""
    cfg = TrainConfig()
    values = {"model": name, "model_args": model_args, "num_slots": num_slots, "official_slots": True,
              "crop": "center", "input_size": 224, "split": "", "boxes": "", "videos": "", "out": ""}
    if name == "i3d_r50":
        values.update(num_rgb_frames=16, rgb_sampler="strided")
    else:
        values["num_box_frames"] = model_args["num_frames"]
    return to_dict(apply(cfg, values, "converted checkpoint"))


def convert_something_else(path: str | os.PathLike, labels_path: str | os.PathLike, out: str | os.PathLike,
                           model: str | None = None, num_slots: int = 4, log=print) -> dict:
    """Convert an official checkpoint; returns the checkpoint dict written to `out`."""
    state, info = read_official(path)
    found = detect_model(state, path)
    name = model or found
    if name not in OFFICIAL_NAMES:
        raise UserError(f"--model {name}: the official code has no such model; convertible: {', '.join(OFFICIAL_NAMES)}")
    names = class_names(load_labels(labels_path))
    if name == "i3d_r50":
        if found != "i3d_r50":
            raise UserError(f"{path}: an official {OFFICIAL_NAMES[found]} checkpoint, not global_i3d (--model {name})")
        args, state, classes = i3d_from_official(state, path)
    else:
        args, state, classes = stin_from_official(state, num_slots, path)
    if classes != len(names):
        raise UserError(f"{labels_path}: {len(names)} classes, but {path} was trained for {classes}")
    net = create_model(name, classes, **args)
    problem = state_mismatch(net, state)
    if problem:
        raise UserError(f"{path}: not an official {OFFICIAL_NAMES[name]} checkpoint (--model {name}): {problem}")
    load_state(net, state, path)
    ckpt = {"model": net.state_dict(), "model_name": name, "model_args": args, "class_names": names,
            "config": official_config(name, args, num_slots), "epoch": int(info.get("epoch", 0) or 0),
            "converted_from": {"path": str(path), "format": "something-else official", **info}}
    save_checkpoint(ckpt, out)
    log(f"wrote {out}: {name} (official {OFFICIAL_NAMES[name]}), {classes} classes, "
        f"{sum(p.numel() for p in net.parameters()):,} parameters" + (f", epoch {info['epoch']}" if "epoch" in info else ""))
    return ckpt


def run(args) -> int:
    out = new_output_file(args.out, [args.checkpoint, args.labels], args.overwrite)
    convert_something_else(args.checkpoint, args.labels, out, args.model, args.num_slots)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video convert", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="source", required=True, parser_class=Parser)
    s = sub.add_parser("something-else", help="an official Something-Else checkpoint (.pth.tar)",
                       description="Convert a checkpoint of the official Something-Else code.")
    s.add_argument("checkpoint", metavar="CKPT", help="official checkpoint (e.g. coord_latent_nl_..._best.pth.tar)")
    s.add_argument("--labels", required=True, help="the labels.json it was trained with (class name -> index)")
    s.add_argument("--out", required=True, help="the checkpoint to write (e.g. best.pt)")
    s.add_argument("--model", choices=sorted(OFFICIAL_NAMES), help="what it is (default: found from its keys)")
    s.add_argument("--num-slots", type=positive_int, default=4, help="box slots the model was trained with "
                                                             "(official --num_boxes; default 4)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
