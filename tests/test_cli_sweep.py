"""The CLI sweep (issue 24): every command of every family, taken from the registry (`vislearn.__main__.FAMILIES`,
each family's COMMANDS and their argparse subcommands, and `vislearn demo`), run in-process through
`vislearn ...` with the mistakes users make about outputs:

- `folder`: a folder where a file is expected; `file`: a file where a folder is expected;
- `existing`: an output path that holds a file vislearn did not write (refused without --overwrite);
- `read-only`: an output folder that cannot be written (chmod 0o555 for a user; for root, whom modes do not
  stop, the immutable attribute: skipped where chattr cannot set it);
- `input`: a command that writes nothing, given a bad input.

Each must give exactly one line on stderr and exit 2, with nothing changed anywhere (the tree of every folder
involved is compared before and after). `test_every_command_has_sweep_cases` fails when a command has no
cases, so a new family's command cannot be forgotten: add its cases to CASES."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "video"))
from box_data import make_box_split  # noqa: E402
from conftest import coded_frames, encode_video  # noqa: E402
from cli_helpers import call, snapshot, unwritable

WRITES_NOTHING = "input"  # the kind of case of a command that writes no file


def registry_commands() -> list[str]:
    """Every command a user can run, as typed after `vislearn`: `FAMILY COMMAND [SUBCOMMAND]`, and the top-level ones."""
    from vislearn.__main__ import FAMILIES, TOP_COMMANDS

    names = []
    for family, module in FAMILIES.items():
        for c in importlib.import_module(module).COMMANDS:
            m = importlib.import_module(c.module)
            subs = []
            if isinstance(getattr(m, "COMMANDS", None), list):  # a group with its own dispatch (control humanoid)
                subs = [s.name for s in m.COMMANDS]
            elif hasattr(m, "build_parser"):
                subs = [name for a in m.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
                        for name in a.choices]
            names += [f"{family} {c.name} {s}" for s in subs] if subs else [f"{family} {c.name}"]
    return names + [c.name for c in TOP_COMMANDS]


@dataclass(frozen=True)
class Case:
    kind: str  # folder, file, existing, read-only, input
    argv: Callable  # e -> the arguments after the command's name
    target: Callable | None = None  # existing: the user's file; read-only: the folder made unwritable
    setup: Callable | None = None  # e -> None, before the case (e.g. a copy of the run to write into)
    exit: int = 2  # the exit code; 1 only for a command that goes on with its other inputs (extract-frames)


def copy_run(e) -> None:
    shutil.copytree(e.run, e.w / "run")


def s_args(e) -> list:
    return ["--labels", e.split / "labels.json", "--train", e.split / "train.json", "--val", e.split / "validation.json"]


def train_args(e, out) -> list:
    return [f"split={e.split}", f"boxes={e.ann}", "model=stin_oie", "model_args.feature_dim=8", "epochs=1",
            "batch_size=8", "workers=0", "threads=1", "frame_size=[427,240]", "device=cpu", "log_every=0", f"out={out}"]


def infer_args(e) -> list:
    return [e.video, "--checkpoint", e.ckpt, "--boxes", e.ann]


IMAGESET = ["--size", "32", "--per-class", "1,1,1", "--quiet"]
CLASSIFIER = ["--backbone", "vit_p_tiny", "--data", "digits", "--img-size", "32", "--epochs", "1"]
PROBE = ["--encoder", "random:vit_p_tiny", "--data", "digits", "--img-size", "32"]
GENERATE = ["--train", "1", "--val", "0", "--test", "0", "--size", "64", "--quiet"]


CTL_DEMOS = ["--task", "reach", "--episodes", "1", "--size", "32", "--num-envs", "1"]
CTL_PPO = ["--task", "reach", "--encoder", "state", "--steps", "64", "--num-envs", "1"]


def ctl_bc(e) -> list:
    return ["--demos", e.ctl_demos, "--encoder", "state", "epochs=1"]


def seg_predict(e) -> list:
    return [e.seg_image, "--checkpoint", e.sam, "--points", "5,5"]

C = Case
CASES: dict[str, list[Case]] = {
    "video data index-boxes": [
        C("folder", lambda e: [e.d, "--out", e.w / "s", "--quiet"]),
        C("file", lambda e: [e.ann, "--out", e.f, "--quiet"]),
        C("existing", lambda e: [e.ann, "--out", e.o, "--quiet"], lambda e: e.o / "notes.txt"),
        C("read-only", lambda e: [e.ann, "--out", e.o / "store", "--quiet"], lambda e: e.o),
    ],
    "video data merge-boxes": [
        C("folder", lambda e: [e.d, "--out", e.w / "m.json"]),
        C("folder", lambda e: [e.ann, "--out", e.d]),
        C("existing", lambda e: [e.ann, "--out", e.o / "m.json"], lambda e: e.o / "m.json"),
        C("read-only", lambda e: [e.ann, "--out", e.o / "m.json"], lambda e: e.o),
    ],
    "video data inspect": [
        C("folder", lambda e: ["--boxes", e.d]),
        C("file", lambda e: ["--boxes", e.ann, "--videos", e.f]),
    ],
    "video data extract-frames": [
        C("file", lambda e: [e.video, "--out", e.f]),
        # one video's refused folder is that video's failure: the others go on, exit 1 (`data extract-frames`)
        C("existing", lambda e: [e.video, "--out", e.o], lambda e: e.o / "1000" / "notes.txt", exit=1),
        C("read-only", lambda e: [e.video, "--out", e.o], lambda e: e.o),
    ],
    "video synthetic": [
        C("file", lambda e: ["--out", e.f, "--videos", "1", "--quiet"]),
        C("existing", lambda e: ["--out", e.o, "--videos", "1", "--quiet"], lambda e: e.o / "notes.txt"),
        C("read-only", lambda e: ["--out", e.o / "syn", "--videos", "1", "--quiet"], lambda e: e.o),
    ],
    "video distractors": [
        C("file", lambda e: ["--data", e.f, "--out", e.w / "x.json"]),
        C("folder", lambda e: ["--data", e.d, "--out", e.d]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o / "x.json"], lambda e: e.o / "x.json"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o / "x.json"], lambda e: e.o),
    ],
    "video splits compositional": [
        C("folder", lambda e: ["--labels", e.d, "--train", e.split / "train.json", "--out", e.w / "c", "--quiet"]),
        C("file", lambda e: [*s_args(e), "--out", e.f, "--quiet"]),
        C("existing", lambda e: [*s_args(e), "--out", e.o, "--quiet"], lambda e: e.o / "train.json"),
        C("read-only", lambda e: [*s_args(e), "--out", e.o, "--quiet"], lambda e: e.o),
    ],
    "video splits shuffled": [
        C("file", lambda e: ["--from", e.f, "--out", e.w / "sh", "--quiet"]),
        C("file", lambda e: ["--from", e.split, "--out", e.f, "--quiet"]),
        C("existing", lambda e: ["--from", e.split, "--out", e.o, "--quiet"], lambda e: e.o / "labels.json"),
        C("read-only", lambda e: ["--from", e.split, "--out", e.o, "--quiet"], lambda e: e.o),
    ],
    "video splits fewshot": [
        C("folder", lambda e: ["--labels", e.d, "--train", e.split / "train.json", "--val", e.split / "validation.json",
                               "--out", e.w / "fs", "--quiet"]),
        C("file", lambda e: [*s_args(e), "--out", e.f, "--quiet"]),
        C("existing", lambda e: [*s_args(e), "--out", e.o, "--quiet"], lambda e: e.o / "base_labels.json"),
        C("read-only", lambda e: [*s_args(e), "--out", e.o, "--quiet"], lambda e: e.o),
    ],
    "video splits validate": [C("file", lambda e: [e.f])],
    "video splits stats": [
        C("file", lambda e: [e.f]),
        C("file", lambda e: [e.split, "--out", e.f]),
        C("existing", lambda e: [e.split, "--out", e.o], lambda e: e.o / "stats.json"),
        C("read-only", lambda e: [e.split, "--out", e.o], lambda e: e.o),
    ],
    "video tracking train-detector": [
        C("folder", lambda e: ["--boxes", e.d, "--videos", e.d, "--out", e.w / "det"]),
        C("file", lambda e: ["--boxes", e.ann, "--videos", e.f, "--out", e.w / "det"]),
        C("file", lambda e: ["--boxes", e.ann, "--videos", e.d, "--out", e.f]),
        C("existing", lambda e: ["--boxes", e.ann, "--videos", e.d, "--out", e.o], lambda e: e.o / "results.json"),
        C("read-only", lambda e: ["--boxes", e.ann, "--videos", e.d, "--out", e.o / "det"], lambda e: e.o),
    ],
    "video tracking detect": [
        C("folder", lambda e: [e.video, "--detector", e.d, "--out", e.w / "d.json", "--quiet"]),
        C("folder", lambda e: [e.video, "--detector", e.ckpt, "--out", e.d, "--quiet"]),
        C("existing", lambda e: [e.video, "--detector", e.ckpt, "--out", e.o / "d.json", "--quiet"],
          lambda e: e.o / "d.json"),
        C("read-only", lambda e: [e.video, "--detector", e.ckpt, "--out", e.o / "d.json", "--quiet"], lambda e: e.o),
    ],
    "video tracking track": [
        C("folder", lambda e: ["--detections", e.d, "--out", e.w / "t.json"]),
        C("folder", lambda e: ["--detections", e.ann, "--out", e.d]),
        C("existing", lambda e: ["--detections", e.ann, "--out", e.o / "t.json"], lambda e: e.o / "t.json"),
        C("read-only", lambda e: ["--detections", e.ann, "--out", e.o / "t.json"], lambda e: e.o),
    ],
    "video tracking track-split": [
        C("file", lambda e: ["--split", e.f, "--videos", e.d, "--detector", e.ckpt, "--out", e.w / "t.json"]),
        C("folder", lambda e: ["--split", e.split, "--videos", e.d, "--detector", e.ckpt, "--out", e.d]),
        C("existing", lambda e: ["--split", e.split, "--videos", e.d, "--detector", e.ckpt, "--out", e.o / "t.json"],
          lambda e: e.o / "t.json"),
        C("read-only", lambda e: ["--split", e.split, "--videos", e.d, "--detector", e.ckpt, "--out", e.o / "t.json"],
          lambda e: e.o),
    ],
    "video tracking evaluate-detector": [
        C("folder", lambda e: ["--detector", e.d, "--boxes", e.ann, "--videos", e.d, "--split", e.split]),
        C("file", lambda e: ["--detector", e.ckpt, "--boxes", e.ann, "--videos", e.f, "--split", e.split]),
    ],
    "video tracking evaluate": [C("folder", lambda e: ["--gt", e.d, "--pred", e.ann])],
    "video tracking fit-context": [
        C("folder", lambda e: ["--detections", e.d, "--boxes", e.ann, "--split", e.split, "--out", e.w / "c.json"]),
        C("folder", lambda e: ["--detections", e.ann, "--boxes", e.ann, "--split", e.split, "--out", e.d]),
        C("existing", lambda e: ["--detections", e.ann, "--boxes", e.ann, "--split", e.split, "--out", e.o / "c.json"],
          lambda e: e.o / "c.json"),
        C("read-only", lambda e: ["--detections", e.ann, "--boxes", e.ann, "--split", e.split, "--out", e.o / "c.json"],
          lambda e: e.o),
    ],
    "video tracking evaluate-detections": [
        C("folder", lambda e: ["--detections", e.d, "--boxes", e.ann, "--split", e.split]),
        C("file", lambda e: ["--detections", e.ann, "--boxes", e.ann, "--split", e.f]),
        C("folder", lambda e: ["--detections", e.ann, "--boxes", e.ann, "--split", e.split, "--context", e.d]),
    ],
    "video train": [
        C("folder", lambda e: ["--config", e.d]),
        C("file", lambda e: [f"split={e.f}", "epochs=1"]),
        C("folder", lambda e: [f"split={e.split}", f"boxes={e.d}", "epochs=1", "device=cpu", f"out={e.w / 'r'}"]),
        C("file", lambda e: train_args(e, e.f)),
        C("existing", lambda e: train_args(e, e.o), lambda e: e.o / "results.json"),
        C("read-only", lambda e: train_args(e, e.o / "r"), lambda e: e.o),
    ],
    "video evaluate": [
        C("folder", lambda e: ["--checkpoint", e.d]),
        C("file", lambda e: ["--checkpoint", e.ckpt, "--split", e.f, "--device", "cpu"]),
        C("file", lambda e: ["--checkpoint", e.ckpt, "--out", e.f, "--device", "cpu"]),
        C("existing", lambda e: ["--checkpoint", e.ckpt, "--out", e.o, "--device", "cpu"], lambda e: e.o / "results.json"),
        C("existing", lambda e: ["--checkpoint", e.ckpt, "--out", e.w / "run", "--device", "cpu"],  # a training run's
          lambda e: e.w / "run" / "results.json", copy_run),
        C("read-only", lambda e: ["--checkpoint", e.ckpt, "--out", e.o, "--device", "cpu"], lambda e: e.o),
    ],
    "video fewshot": [
        C("folder", lambda e: ["--config", e.d, "--fewshot", e.d]),
        C("file", lambda e: ["--fewshot", e.f, f"out={e.w / 'few'}"]),
        C("file", lambda e: ["--fewshot", e.d, f"out={e.f}"]),
        C("existing", lambda e: ["--fewshot", e.d, f"out={e.o}"], lambda e: e.o / "fewshot_results.json"),
        C("read-only", lambda e: ["--fewshot", e.d, f"out={e.o}"], lambda e: e.o),
    ],
    "video infer": [
        C("folder", lambda e: [e.video, "--checkpoint", e.d]),
        C("folder", lambda e: [e.video, "--checkpoint", e.ckpt, "--boxes", e.d]),
        C("folder", lambda e: [*infer_args(e), "--json", e.d]),
        C("file", lambda e: [*infer_args(e), "--render", e.f]),
        C("existing", lambda e: [*infer_args(e), "--json", e.o / "r.jsonl"], lambda e: e.o / "r.jsonl"),
        C("existing", lambda e: [*infer_args(e), "--render", e.o], lambda e: e.o / "1000.mp4"),
        C("existing", lambda e: [*infer_args(e), "--render", e.o], lambda e: e.o / "1000_sheet.png"),
        C("read-only", lambda e: [*infer_args(e), "--json", e.o / "r.jsonl"], lambda e: e.o),
        C("read-only", lambda e: [*infer_args(e), "--render", e.o], lambda e: e.o),
    ],
    "video report": [
        C("file", lambda e: [e.f]),
        C("folder", lambda e: [e.w / "run", "--out", e.d], setup=copy_run),
        C("existing", lambda e: [e.w / "run"], lambda e: e.w / "run" / "report.html", copy_run),
        C("existing", lambda e: [e.w / "run", "--out", e.o / "page.html"], lambda e: e.o / "page.html", copy_run),
        C("read-only", lambda e: [e.w / "run"], lambda e: e.w / "run", copy_run),
    ],
    "video convert something-else": [
        C("folder", lambda e: [e.ckpt, "--labels", e.split / "labels.json", "--out", e.d]),
        C("existing", lambda e: [e.ckpt, "--labels", e.split / "labels.json", "--out", e.o / "c.pt"],
          lambda e: e.o / "c.pt"),
        C("read-only", lambda e: [e.ckpt, "--labels", e.split / "labels.json", "--out", e.o / "c.pt"], lambda e: e.o),
    ],
    "video export": [
        C("folder", lambda e: [e.ckpt, "--format", "torchscript", "--out", e.d]),
        C("existing", lambda e: [e.ckpt, "--format", "torchscript", "--out", e.o / "m.pt"], lambda e: e.o / "m.pt"),
        C("read-only", lambda e: [e.ckpt, "--format", "torchscript", "--out", e.o / "m.pt"], lambda e: e.o),
    ],
    "video table": [
        C("file", lambda e: ["--data", e.f, "--out", e.w / "t"]),
        C("file", lambda e: ["--data", e.d, "--out", e.f]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "results.md"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o),
        C("read-only", lambda e: ["--data", e.o / "data", "--out", e.w / "t"], lambda e: e.o),  # data to generate
    ],
    "backbones list": [C(WRITES_NOTHING, lambda e: ["no_such_backbone"])],
    "backbones imageset": [
        C("file", lambda e: ["--out", e.f, *IMAGESET]),
        C("existing", lambda e: ["--out", e.o, *IMAGESET], lambda e: e.o / "notes.txt"),
        C("existing", lambda e: ["--out", e.o / "set.npz", "--format", "npz", *IMAGESET], lambda e: e.o / "set.npz"),
        C("read-only", lambda e: ["--out", e.o / "set", *IMAGESET], lambda e: e.o),
    ],
    "backbones train": [
        C("file", lambda e: [*CLASSIFIER, "--out", e.f]),
        C("existing", lambda e: [*CLASSIFIER, "--out", e.o], lambda e: e.o / "results.json"),
        C("read-only", lambda e: [*CLASSIFIER, "--out", e.o / "run"], lambda e: e.o),
    ],
    "backbones claims": [
        C("file", lambda e: ["--out", e.f, "--budget", "smoke"]),
        C("existing", lambda e: ["--out", e.o, "--budget", "smoke"], lambda e: e.o / "plan.json"),
        C("read-only", lambda e: ["--out", e.o / "claims", "--budget", "smoke"], lambda e: e.o),
    ],
    "pretrain mae": [
        C("file", lambda e: ["--data", e.d, "--out", e.f]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "encoder.pth"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o / "run"], lambda e: e.o),
    ],
    "pretrain probe": [
        C("folder", lambda e: [*PROBE, "--out", e.d]),
        C("existing", lambda e: [*PROBE, "--out", e.o / "probe.json"], lambda e: e.o / "probe.json"),
        C("read-only", lambda e: [*PROBE, "--out", e.o / "probe.json"], lambda e: e.o),
    ],
    "pretrain compare": [
        C("file", lambda e: ["--data", e.d, "--out", e.f]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "results.md"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o / "compare"], lambda e: e.o),
    ],
    **{f"pretrain {method}": [
        C("file", lambda e: ["--data", e.d, "--out", e.f]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "encoder.pth"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o / "run"], lambda e: e.o),
    ] for method in ("moco", "resim", "looc")},
    "pretrain convert": [
        C("folder", lambda e: [e.ckpt, "--out", e.d]),
        C("existing", lambda e: [e.ckpt, "--out", e.o / "encoder.pth"], lambda e: e.o / "encoder.pth"),
        C("read-only", lambda e: [e.ckpt, "--out", e.o / "encoder.pth"], lambda e: e.o),
    ],
    "pretrain metric": [
        C("file", lambda e: ["--data", "digits-modes", "--out", e.f]),
        C("existing", lambda e: ["--data", "digits-modes", "--out", e.o], lambda e: e.o / "results.json"),
        C("read-only", lambda e: ["--data", "digits-modes", "--out", e.o / "run"], lambda e: e.o),
    ],
    "pretrain retrieve": [
        C("folder", lambda e: ["--run", e.o, "--query", e.d, "--out", e.d]),
        C("existing", lambda e: ["--run", e.o, "--query", e.d, "--out", e.o / "sheet.png"], lambda e: e.o / "sheet.png"),
        C("read-only", lambda e: ["--run", e.o, "--query", e.d, "--out", e.o / "sheet.png"], lambda e: e.o),
    ],
    "segment generate-data": [
        C("file", lambda e: ["--out", e.f, *GENERATE]),
        C("existing", lambda e: ["--out", e.o, *GENERATE], lambda e: e.o / "notes.txt"),
        C("existing", lambda e: ["--out", e.o, *GENERATE], lambda e: e.o / "dataset.json"),
        C("read-only", lambda e: ["--out", e.o / "data", *GENERATE], lambda e: e.o),
    ],
    "segment train": [
        C("folder", lambda e: ["--data", e.f, "--out", e.w / "run", "--arch", "vit_tiny_p256"]),
        C("file", lambda e: ["--data", e.seg, "--out", e.f, "--arch", "vit_tiny_p256"]),
        C("existing", lambda e: ["--data", e.seg, "--out", e.o, "--arch", "vit_tiny_p256"], lambda e: e.o / "sam.pth"),
        C("read-only", lambda e: ["--data", e.seg, "--out", e.o / "run", "--arch", "vit_tiny_p256"], lambda e: e.o),
    ],
    "segment predict": [
        C("folder", lambda e: [e.d, "--checkpoint", e.sam, "--points", "5,5", "--out", e.w / "p"]),
        C("file", lambda e: [e.f, "--checkpoint", e.sam, "--points", "5,5", "--out", e.w / "p"]),
        C("file", lambda e: [e.seg_image, "--checkpoint", e.f, "--points", "5,5", "--out", e.w / "p"]),
        C("file", lambda e: [*seg_predict(e), "--out", e.f]),
        C("existing", lambda e: [*seg_predict(e), "--out", e.o], lambda e: e.o / "image" / "overlay.png"),
        C("read-only", lambda e: [*seg_predict(e), "--out", e.o / "p"], lambda e: e.o),
    ],
    "segment auto": [
        C("file", lambda e: [e.f, "--checkpoint", e.sam, "--out", e.w / "a"]),
        C("file", lambda e: [e.seg_image, "--checkpoint", e.sam, "--out", e.f]),
        C("existing", lambda e: [e.seg_image, "--checkpoint", e.sam, "--out", e.o], lambda e: e.o / "sa_image.json"),
        C("read-only", lambda e: [e.seg_image, "--checkpoint", e.sam, "--out", e.o / "a"], lambda e: e.o),
    ],
    "segment engine": [
        C("file", lambda e: ["--data", e.f, "--out", e.w / "run", "--checkpoint", e.sam]),
        C("file", lambda e: ["--data", e.seg, "--out", e.f, "--checkpoint", e.sam]),
        C("existing", lambda e: ["--data", e.seg, "--out", e.o, "--checkpoint", e.sam], lambda e: e.o / "engine.json"),
        C("read-only", lambda e: ["--data", e.seg, "--out", e.o / "run", "--checkpoint", e.sam], lambda e: e.o),
    ],
    "segment evaluate": [
        C("file", lambda e: ["--checkpoint", e.f, "--data", e.seg, "--out", e.w / "ev"]),
        C("file", lambda e: ["--checkpoint", e.sam, "--data", e.seg, "--out", e.f]),
        C("existing", lambda e: ["--checkpoint", e.sam, "--data", e.seg, "--out", e.o], lambda e: e.o / "results.json"),
        C("read-only", lambda e: ["--checkpoint", e.sam, "--data", e.seg, "--out", e.o / "ev"], lambda e: e.o),
    ],
    "segment export": [
        C("file", lambda e: ["--checkpoint", e.f, "--out", e.w / "onnx"]),
        C("folder", lambda e: ["--checkpoint", e.d, "--out", e.w / "onnx"]),
        C("file", lambda e: ["--checkpoint", e.sam, "--out", e.f]),
        C("existing", lambda e: ["--checkpoint", e.sam, "--out", e.o], lambda e: e.o / "decoder.onnx"),
        C("read-only", lambda e: ["--checkpoint", e.sam, "--out", e.o / "onnx"], lambda e: e.o),
    ],
    "control envs": [
        C("folder", lambda e: ["--still", e.d, "--size", "32"]),
        C("existing", lambda e: ["--still", e.o / "still.png", "--size", "32"], lambda e: e.o / "still.png"),
        C("read-only", lambda e: ["--still", e.o / "still.png", "--size", "32"], lambda e: e.o),
    ],
    "control demos": [
        C("file", lambda e: [*CTL_DEMOS, "--out", e.f]),
        C("existing", lambda e: [*CTL_DEMOS, "--out", e.o], lambda e: e.o / "demos.json"),
        C("read-only", lambda e: [*CTL_DEMOS, "--out", e.o / "demos"], lambda e: e.o),
    ],
    "control bc": [
        C("file", lambda e: ["--demos", e.f, "--encoder", "state", "--out", e.w / "run"]),
        C("folder", lambda e: ["--demos", e.d, "--encoder", "state", "--out", e.w / "run"]),
        C("file", lambda e: [*ctl_bc(e), "--out", e.f]),
        C("existing", lambda e: [*ctl_bc(e), "--out", e.o], lambda e: e.o / "policy.pt"),
        C("read-only", lambda e: [*ctl_bc(e), "--out", e.o / "run"], lambda e: e.o),
    ],
    "control ppo": [
        C("file", lambda e: [*CTL_PPO, "--out", e.f]),
        C("existing", lambda e: [*CTL_PPO, "--out", e.o], lambda e: e.o / "policy.pt"),
        C("read-only", lambda e: [*CTL_PPO, "--out", e.o / "run"], lambda e: e.o),
    ],
    "control evaluate": [
        C("file", lambda e: [e.f, "--episodes", "1"]),
        C("folder", lambda e: [e.d, "--episodes", "1"]),
        C("folder", lambda e: [e.ctl_policy, "--episodes", "1", "--out", e.d]),
        C("existing", lambda e: [e.ctl_policy, "--episodes", "1", "--out", e.o / "r.json"], lambda e: e.o / "r.json"),
        C("read-only", lambda e: [e.ctl_policy, "--episodes", "1", "--out", e.o / "r.json"], lambda e: e.o),
    ],
    "control record": [
        C("file", lambda e: [e.f, "--out", e.w / "v.mp4", "--episodes", "1", "--size", "32"]),
        C("folder", lambda e: [e.ctl_policy, "--out", e.d, "--episodes", "1", "--size", "32"]),
        C("existing", lambda e: [e.ctl_policy, "--out", e.o / "v.mp4", "--episodes", "1", "--size", "32"],
          lambda e: e.o / "v.mp4"),
        C("read-only", lambda e: [e.ctl_policy, "--out", e.o / "v.mp4", "--episodes", "1", "--size", "32"],
          lambda e: e.o),
    ],
    "control compare": [
        C("file", lambda e: ["--out", e.f, "--demos-root", e.w / "demos", "--tasks", "reach", "--encoders", "state"]),
        C("existing", lambda e: ["--out", e.o, "--demos-root", e.w / "demos", "--tasks", "reach", "--encoders", "state"],
          lambda e: e.o / "results.md"),
        C("read-only", lambda e: ["--out", e.o / "cmp", "--demos-root", e.w / "demos", "--tasks", "reach",
                                  "--encoders", "state"], lambda e: e.o),
    ],
    "control humanoid train-teacher": [
        C("file", lambda e: [*HUM_TRAIN, "--out", e.f]),
        C("file", lambda e: ["--robot", e.f, "--out", e.w / "run", *HUM_TRAIN]),
        C("existing", lambda e: [*HUM_TRAIN, "--out", e.o], lambda e: e.o / "policy.pt"),
        C("read-only", lambda e: [*HUM_TRAIN, "--out", e.o / "run"], lambda e: e.o),
    ],
    "control humanoid train-student": [
        C("file", lambda e: ["--teacher", e.f, "--out", e.w / "run", *HUM_TRAIN]),
        C("folder", lambda e: ["--teacher", e.d, "--out", e.w / "run", *HUM_TRAIN]),
        C("file", lambda e: ["--teacher", e.hum_teacher, "--out", e.f, *HUM_TRAIN]),
        C("existing", lambda e: ["--teacher", e.hum_teacher, "--out", e.o, *HUM_TRAIN], lambda e: e.o / "config.json"),
        C("read-only", lambda e: ["--teacher", e.hum_teacher, "--out", e.o / "run", *HUM_TRAIN], lambda e: e.o),
    ],
    "control humanoid evaluate": [
        C("file", lambda e: [e.f, "--episodes", "1", "--out", e.w / "r.json"]),
        C("folder", lambda e: [e.d, "--episodes", "1", "--out", e.w / "r.json"]),
        C("folder", lambda e: [e.hum_teacher, "--episodes", "1", "--out", e.d]),
        C("existing", lambda e: [e.hum_teacher, "--episodes", "1", "--out", e.o / "r.json"], lambda e: e.o / "r.json"),
        C("read-only", lambda e: [e.hum_teacher, "--episodes", "1", "--out", e.o / "r.json"], lambda e: e.o),
    ],
    "control humanoid record": [
        C("file", lambda e: [e.f, "--out", e.w / "v.mp4", *HUM_REC]),
        C("folder", lambda e: [e.hum_teacher, "--out", e.d, *HUM_REC]),
        C("existing", lambda e: [e.hum_teacher, "--out", e.o / "v.mp4", *HUM_REC], lambda e: e.o / "v.mp4"),
        C("read-only", lambda e: [e.hum_teacher, "--out", e.o / "v.mp4", *HUM_REC], lambda e: e.o),
    ],
    "control cycles collect": [
        C("file", lambda e: ["cheetah_armature2", "--out", e.f]),
        C("existing", lambda e: ["cheetah_armature2", "--out", e.o], lambda e: e.o / "config.json"),
        C("read-only", lambda e: ["cheetah_armature2", "--out", e.o / "run"], lambda e: e.o),
    ],
    "control cycles train-policy": [
        C("file", lambda e: ["cheetah_armature2", "--side", "source", "--out", e.f]),
        C("existing", lambda e: ["cheetah_armature2", "--side", "source", "--out", e.o], lambda e: e.o / "policy.pt"),
        C("read-only", lambda e: ["cheetah_armature2", "--side", "source", "--out", e.o / "run"], lambda e: e.o),
    ],
    "control cycles fit": [
        C("file", lambda e: ["--run", e.f]),
        C("input", lambda e: ["--run", e.d]),
        C("existing", lambda e: ["--run", e.o], lambda e: e.o / "maps.pt", setup=lambda e: cyc_copy(e, e.o)),
        C("read-only", lambda e: ["--run", e.o / "run"], lambda e: e.o / "run",
          setup=lambda e: cyc_copy(e, e.o / "run")),
    ],
    "control cycles transfer": [
        C("file", lambda e: ["--run", e.f, "--policy", e.cyc_policy, "--episodes", "1"]),
        C("file", lambda e: ["--run", e.cyc_run, "--policy", e.f, "--episodes", "1"]),
        C("folder", lambda e: ["--run", e.cyc_run, "--policy", e.d, "--episodes", "1"]),
        C("folder", lambda e: ["--run", e.cyc_run, "--policy", e.cyc_policy, "--episodes", "1", "--out", e.d]),
        C("existing", lambda e: ["--run", e.cyc_run, "--policy", e.cyc_policy, "--episodes", "1",
                                 "--video", e.o / "v.mp4"], lambda e: e.o / "v.mp4"),
        C("read-only", lambda e: ["--run", e.cyc_run, "--policy", e.cyc_policy, "--episodes", "1",
                                  "--out", e.o / "r.json"], lambda e: e.o),
    ],
    "control cycles evaluate": [
        C("file", lambda e: ["--runs", e.f, "--policy", e.cyc_policy, "--out", e.w / "ev"]),
        C("folder", lambda e: ["--runs", e.cyc_run, "--policy", e.d, "--out", e.w / "ev"]),
        C("file", lambda e: ["--runs", e.cyc_run, "--policy", e.cyc_policy, "--out", e.f]),
        C("existing", lambda e: ["--runs", e.cyc_run, "--policy", e.cyc_policy, "--out", e.o],
          lambda e: e.o / "results.md"),
        C("read-only", lambda e: ["--runs", e.cyc_run, "--policy", e.cyc_policy, "--out", e.o / "ev"], lambda e: e.o),
    ],
    "demo": [
        C("file", lambda e: ["--data", e.f, "--out", e.w / "demo"]),
        C("file", lambda e: ["--out", e.f]),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "results.md"),
        C("existing", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o / "summary.json"),
        C("read-only", lambda e: ["--data", e.d, "--out", e.o], lambda e: e.o),
    ],
}


def test_every_command_has_sweep_cases():
    """A command of the registry without cases here (a new family's, a new subcommand) fails this test, as
    do cases of a command that no longer exists. A command that writes files has `existing` and `read-only`
    cases; one that writes none says so with an `input` case or only folder/file cases."""
    commands = registry_commands()
    assert len(commands) == len(set(commands))
    missing = [c for c in commands if not CASES.get(c)]
    assert not missing, f"commands without sweep cases (add them to CASES): {missing}"
    assert not set(CASES) - set(commands), f"cases of commands that are not in the registry: {set(CASES) - set(commands)}"
    writes_nothing = {"video data inspect", "video splits validate", "video tracking evaluate-detector",
                      "video tracking evaluate", "video tracking evaluate-detections", "backbones list"}
    for name, cases in CASES.items():
        kinds = {c.kind for c in cases}
        if name not in writes_nothing:
            assert {"existing", "read-only"} <= kinds, f"{name}: a command that writes needs existing and read-only cases"


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The shared inputs: a tiny box split, a 1-epoch STIN run trained on it, an .mp4 of video 1000."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep_inputs")
    split, ann = make_box_split(root / "boxes", videos=40, frames=8)
    run = root / "run"
    from vislearn.video.actions.train import main

    e = SimpleNamespace(split=split, ann=ann, run=run, ckpt=run / "best.pt",
                        video=encode_video(root / "1000.mp4", coded_frames(12)), root=root, seg=root / "seg",
                        sam=root / "sam.pth", seg_image=root / "image.png", ctl_demos=root / "ctl_demos",
                        ctl_policy=root / "policy.pt", hum_teacher=root / "hum_teacher.pt",
                        cyc_run=root / "cyc_run", cyc_policy=root / "cyc_policy.pt")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([str(a) for a in train_args(e, run)]) == 0, err.getvalue()
        from vislearn.segment.data.generate import main as generate

        assert generate(["--out", str(e.seg), "--train", "2", "--val", "1", "--test", "1", "--size", "64",
                         "--quiet"]) == 0, err.getvalue()
    make_segment_inputs(e)
    make_control_inputs(e)
    make_humanoid_inputs(e)
    make_cycles_inputs(e)
    yield e
    torch.set_num_threads(old)


def make_segment_inputs(e) -> None:
    """A small SAM checkpoint (64 px, random weights) and one image for the segment commands."""
    import dataclasses

    from PIL import Image

    from vislearn.segment.model.build import ARCHS, build_sam, save_sam

    arch = dataclasses.replace(ARCHS["vit_tiny_p256"], name="sweep", img_size=64, depth=2, global_attn_indexes=(1,),
                               window_size=2)
    save_sam(e.sam, build_sam(arch), arch)
    Image.new("RGB", (48, 40), (120, 30, 200)).save(e.seg_image)


HUM_TRAIN = ["--steps", "64", "num_envs=2", "num_steps=32", "eval_episodes=0"]
HUM_REC = ["--seconds", "0.2", "--width", "64", "--height", "64"]


def make_humanoid_inputs(e) -> None:
    """A teacher policy file of Walker2d with random weights (what train-teacher writes, untrained)."""
    from vislearn.control.humanoid.env import EnvSettings, LocoEnvs
    from vislearn.control.humanoid.policies import ActorCritic, Policy
    from vislearn.control.humanoid.policy_file import policy_state, save_policy
    from vislearn.control.humanoid.randomization import Randomization
    from vislearn.control.humanoid.train import LocoConfig

    settings, rand = EnvSettings(), Randomization()
    envs = LocoEnvs(settings, 1, rand, lambda i, k: k)
    policy = Policy("teacher", envs.obs_dim, envs.priv_dim, envs.n_act, 16)
    ac = ActorCritic(policy, envs.priv_dim)
    save_policy(e.hum_teacher, policy_state(policy, ac.critic, "teacher", envs, settings, rand, LocoConfig()))


CYC_PAIR = """base: {defaults}
name: sweep
source: {{task: Swimmer-v5}}
target: {{task: Swimmer-v5, armature: 2.0}}
collect_steps: 1000
episode_steps: 100
forward_steps: 5
forward_hidden: [8]
map_hidden: [8]
disc_hidden: [8]
rounds: 1
steps_per_phase: 2
batch_size: 8
"""


def make_cycles_inputs(e) -> None:
    """A collected and fitted Swimmer pair (tiny networks) and a source policy file with random weights."""
    from vislearn.control.cycles.collect import collect_run
    from vislearn.control.cycles.domains import Domain, variant_xml
    from vislearn.control.cycles.fit import fit_run
    from vislearn.control.cycles.pairs import CONFIGS, load_pair
    from vislearn.control.cycles.policy import Actor, save_policy

    (e.root / "cyc_pair.yaml").write_text(CYC_PAIR.format(defaults=CONFIGS / "defaults.yaml"))
    cfg, source = load_pair(e.root / "cyc_pair.yaml")
    collect_run(cfg, e.cyc_run, source, log=lambda *a: None)
    fit_run(e.cyc_run, log=lambda *a: None, progress=False)
    domain = Domain(task="Swimmer-v5")
    save_policy(e.cyc_policy, Actor(8, 2), domain, variant_xml(domain), {})


def cyc_copy(e, dest: Path) -> None:
    """The collected run without its fit (so that `fit` would run there), copied to `dest`."""
    shutil.copytree(e.cyc_run, dest, ignore=shutil.ignore_patterns("*.lock", ".lock*", "last.pt", "maps.pt",
                                                                     "fit*"))


def make_control_inputs(e) -> None:
    """One reach demonstration at 32 px, and a policy file (random MVP policy on the state) for the control commands."""
    import torch

    from vislearn.control.agent import Norm, policy_file
    from vislearn.control.demos import record_demos
    from vislearn.control.envs import PROPRIO_DIM, STATE_DIM, RenderSettings
    from vislearn.control.policy import MVPPolicy

    record_demos("reach", 1, e.ctl_demos, render=RenderSettings(size=32), num_envs=1, log=lambda *a: None)
    torch.save(policy_file("reach", "bc", "state", MVPPolicy(STATE_DIM, PROPRIO_DIM, 4),
                           Norm.identity(STATE_DIM, PROPRIO_DIM), RenderSettings(size=32)), e.ctl_policy)


def run_vislearn(argv: list) -> tuple[int, str, str]:
    from vislearn.__main__ import main

    return call(main, *argv)


def sweep(env, tmp_path, kinds: set[str]) -> None:
    bad, ran = [], 0
    for name, cases in CASES.items():
        for i, case in enumerate(c for c in cases if c.kind in kinds):
            w = tmp_path / f"{name.replace(' ', '_')}_{case.kind}_{i}"
            w.mkdir()
            e = SimpleNamespace(**vars(env), w=w, d=w / "adir", f=w / "afile.txt", o=w / "out")
            e.d.mkdir()
            e.f.write_text("not what you think")
            if case.setup is not None:
                case.setup(e)
            target = case.target(e) if case.target is not None else None
            if case.kind == "existing":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("the user's own")
            elif case.kind == "read-only":
                target.mkdir(parents=True, exist_ok=True)
            argv = [*name.split(), *case.argv(e)]
            roots = (w, env.root)
            before = snapshot(*roots)
            with unwritable(target) if case.kind == "read-only" else contextlib.nullcontext():
                rc, _, err = run_vislearn(argv)
                after = snapshot(*roots)
            ran += 1
            lines = [line for line in err.strip().splitlines() if line.strip()]
            where = f"{case.kind}: vislearn {' '.join(map(str, argv))}"
            if os.environ.get("SWEEP_SHOW"):  # SWEEP_SHOW=1 pytest -s: every case's line, to read them
                print(f"{name} [{case.kind}] exit {rc}: {' | '.join(lines)}".replace(str(tmp_path), "T"))
            if rc != case.exit or len(lines) != 1 or "Traceback" in err:
                bad.append(f"{where}: exit {rc}: {err.strip()[-400:]}")
            elif after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                bad.append(f"{where}: changed {changed[:4]}")
            elif case.kind == "read-only" and (str(target) + ":" not in lines[0] or ".building." in lines[0]
                                               or ".tmp" in lines[0]):
                bad.append(f"{where}: the line does not name the folder {target} (or names a temporary file): {lines[0]}")
            elif case.kind == "existing" and (str(target) not in lines[0] and str(target.parent) not in lines[0]):
                bad.append(f"{where}: the line names neither {target} nor its folder: {lines[0]}")
    assert ran and not bad, f"{len(bad)} of {ran} cases:\n" + "\n".join(bad)


def test_sweep_folders_and_files_of_the_wrong_kind(env, tmp_path):
    sweep(env, tmp_path, {"folder", "file", WRITES_NOTHING})


def test_sweep_existing_outputs_are_never_replaced_without_overwrite(env, tmp_path):
    sweep(env, tmp_path, {"existing"})


def test_sweep_unwritable_output_folders_are_refused_before_the_work(env, tmp_path):
    sweep(env, tmp_path, {"read-only"})
