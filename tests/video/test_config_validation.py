"""Nothing lost, round two (issue 24), in the video family's commands: every TrainConfig field is checked
when the config loads (training and --dry-run alike); `base:` loops, NUL bytes and deeply nested JSON are
one line; a checkpoint of the other kind or with a damaged entry says what it is; class names from files
reach the terminal without escapes, in any encoding; `| head` and a labels file with gaps. Real parts: a
model trained here, a detector checkpoint written here, videos encoded here, the CLIs in-process and, where
an encoding or a pipe is the point, as processes."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from box_data import make_box_split, run_args
from conftest import coded_frames, encode_video
from vislearn.common.errors import UserError
from cli_helpers import call, one_line

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
ESC = "\x1b]0;owned\x07RED\x1bc"  # sets the terminal's title, then resets the terminal (no brackets: class names lose them)

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vislearn", "video", *map(str, argv)], capture_output=True, text=True,
                          env=env or ENV, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def box_split(tmp_path_factory):
    return make_box_split(tmp_path_factory.mktemp("boxes"), videos=40, frames=8)


def train_main(*argv):
    from vislearn.video.actions.train import main

    return call(main, *argv)


@pytest.fixture(scope="module")
def run(box_split, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    rc, _, err = train_main(*run_args(box_split, out))
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    return encode_video(tmp_path_factory.mktemp("mp4") / "1000.mp4", coded_frames(12))


def rewritten(src: Path, dst: Path, **entries) -> Path:
    """A copy of checkpoint `src` with `entries` replaced, written the project's way."""
    from vislearn.common.checkpoint import save_checkpoint

    save_checkpoint({**torch.load(src, weights_only=True), **entries}, dst)
    return dst


# ------------------------------------------------------------------------ 1. deeply nested JSON, every reader

def test_deeply_nested_json_is_one_line_in_every_command_that_reads_it(box_split, run, mp4, tmp_path):
    from vislearn.video.actions.infer import main as infer
    from vislearn.video.data.__main__ import main as data
    from vislearn.video.splits.__main__ import main as splits

    split, boxes = box_split
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000)
    want = f"error: {deep}: nested deeper than 100 levels"
    for rc, _, err in (call(data, "index-boxes", deep, "--out", tmp_path / "store"),
                       call(splits, "fewshot", "--labels", deep, "--train", split / "train.json", "--val",
                            split / "validation.json", "--out", tmp_path / "fs"),
                       call(infer, mp4, "--checkpoint", run / "best.pt", "--boxes", deep),
                       train_main("--dry-run", *run_args(box_split, tmp_path / "r", boxes=deep))):
        assert rc == 2 and one_line(err).startswith(want), err[-3000:]


# ------------------------------------------------------------------------------ 2. base: chains that loop

def test_a_config_whose_base_loops_is_one_line_naming_the_chain(box_split, tmp_path):
    from vislearn.video.actions.config import load_config

    (tmp_path / "a.yaml").write_text("base: b.yaml\nepochs: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nepochs: 2\n")
    (tmp_path / "self.yaml").write_text("base: self.yaml\nepochs: 2\n")
    with pytest.raises(UserError, match="the chain of configs loops: .*a.yaml -> .*b.yaml -> .*a.yaml$"):
        load_config(tmp_path / "a.yaml")
    rc, _, err = train_main("--dry-run", "--config", tmp_path / "self.yaml", *run_args(box_split, tmp_path / "r"))
    assert rc == 2 and "a config cannot be its own base" in one_line(err) and "self.yaml -> " in err


# ------------------------------------------------------------------------------- 3. a NUL byte in a path

def test_a_nul_byte_in_a_path_of_a_config_names_the_key(box_split, tmp_path):
    split, boxes = box_split
    conf = tmp_path / "nul.yaml"
    conf.write_text(f'boxes: "{boxes}\\0.json"\n')
    args = [a for a in run_args(box_split, tmp_path / "r") if not a.startswith("boxes=")]
    rc, _, err = train_main("--dry-run", "--config", conf, *args)
    assert rc == 2 and one_line(err) == f"error: {conf}: boxes='{boxes}\\x00.json': must not hold a NUL byte"
    conf.write_text('model_args: {scene_checkpoint: "a\\0b.pt"}\n')
    rc, _, err = train_main("--dry-run", "--config", conf, *args, f"boxes={boxes}")
    assert rc == 2 and "model_args=" in one_line(err) and "must not hold a NUL byte" in err


# ------------------------------------------------------------------------ 4. every field checked at load

@pytest.mark.parametrize("override,message", [
    ("frame_size=[0,0]", "frame_size=[0, 0]: each item must be at least 1"),
    ("num_slots=0", "num_slots=0: must be at least 1"),
    ("num_box_frames=0", "num_box_frames=0: must be at least 1"),
    ("workers=-1", "workers=-1: must be at least 0"),
    ("label_smoothing=2", "label_smoothing=2.0: must be a finite number from 0 to 1"),
    ("momentum=-5", "momentum=-5.0: must be a finite number from 0 to 1"),
    ("lr_steps=[abc]", "lr_steps=['abc']: must be a list of whole numbers"),
    ("lr_steps=[2.5]", "lr_steps=[2.5]: must be a list of whole numbers"),
    ("epochs=0", "epochs=0: must be at least 1"),
    ("eval_views=[1]", "eval_views=[1]: must be a list of 2 items"),
])
def test_dry_run_refuses_what_training_cannot_use(box_split, tmp_path, override, message):
    rc, out, err = train_main("--dry-run", *run_args(box_split, tmp_path / "r"), override)
    assert rc == 2 and one_line(err) == f"error: {message}", out + err
    assert not (tmp_path / "r").exists()


def test_a_bad_value_in_a_config_file_names_the_file_and_the_key(box_split, tmp_path):
    conf = tmp_path / "base.yaml"
    conf.write_text("epochs: 0\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\nlr: 0.1\n")
    rc, _, err = train_main("--dry-run", "--config", child, *[a for a in run_args(box_split, tmp_path / "r")
                                                                if not a.startswith("epochs=")])
    assert rc == 2 and one_line(err) == f"error: {conf}: epochs=0: must be at least 1"


def test_every_field_of_the_train_config_is_checked():
    from vislearn.common.validate import problem, rule_of, validate
    from vislearn.video.actions.config import TrainConfig

    validate(TrainConfig())
    wrong = {bool: "yes", int: 1.5, float: "x", str: 3, list: 7, dict: [1]}
    import typing

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = typing.get_origin(hints[f.name]) or hints[f.name]
        with pytest.raises(UserError, match=f"^config: {f.name}="):
            validate(dataclasses.replace(TrainConfig(), **{f.name: wrong[kind]}))
        assert problem(getattr(TrainConfig(), f.name), hints[f.name], rule_of(f)) is None


def test_training_runs_the_same_validation_as_the_config_load(box_split, tmp_path):
    """A config built in code (the table, few-shot stages) is checked by train() itself, dry run or not."""
    from vislearn.video.actions.config import load_config
    from vislearn.video.actions.train import train

    cfg = load_config(None, run_args(box_split, tmp_path / "r"))
    for bad in (dict(workers=-1), dict(lr_steps=["abc"]), dict(num_slots=0)):
        for dry in (True, False):
            with pytest.raises(UserError, match=f"^config: {next(iter(bad))}="):
                train(dataclasses.replace(cfg, **bad), dry_run=dry)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------- 5. a checkpoint of the other kind

def test_a_detector_checkpoint_given_to_evaluate_says_what_it_is(box_split, tmp_path):
    from vislearn.video.actions.evaluate import main as evaluate
    from vislearn.video.tracking.detector import build_detector, default_spec, save_detector

    spec = default_spec("mobilenet_v3", min_size=64, max_size=96)
    det = tmp_path / "det" / "best.pt"
    det.parent.mkdir()
    save_detector(det, build_detector(spec), spec)
    split, boxes = box_split
    rc, _, err = call(evaluate, "--checkpoint", det, "--split", split, "--boxes", boxes)
    line = one_line(err)
    assert rc == 2 and line.startswith(f"error: {det}: a hand/object detector checkpoint (of `vislearn video "
                                       "tracking train-detector`)")
    assert "--detector" in line and "`vislearn video train`" in line
    from vislearn.video.actions.export import main as export

    rc, _, err = call(export, det, "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert rc == 2 and one_line(err).startswith(f"error: {det}: a hand/object detector checkpoint")


def test_an_action_checkpoint_given_to_the_detector_says_what_it_is(run, mp4, tmp_path):
    from vislearn.video.tracking.__main__ import main as tracking

    rc, _, err = call(tracking, "detect", mp4, "--detector", run / "best.pt", "--out", tmp_path / "d.json")
    line = one_line(err)
    assert rc == 2 and line.startswith(f"error: {run / 'best.pt'}: an action model's checkpoint (of `vislearn video "
                                       "train`), not a detector's")
    assert "--checkpoint" in line and "train-detector" in line


# ------------------------------------------------------------------- 6. a checkpoint with a damaged entry

@pytest.mark.parametrize("entry,value,message", [
    ("config", "oops", "{ckpt}: 'config' must be a mapping, got str (damaged checkpoint?)"),
    ("model_args", [1], "{ckpt}: 'model_args' must be a mapping, got list (damaged checkpoint?)"),
    ("class_names", "abc", "{ckpt}: 'class_names' must be a non-empty list of class names, got str"),
    ("config", {"workers": -1}, "{ckpt} (its config): workers=-1: must be at least 0"),
])
def test_infer_with_a_damaged_checkpoint_entry_is_one_line(run, box_split, mp4, tmp_path, entry, value, message):
    from vislearn.video.actions.infer import main as infer

    ckpt = rewritten(run / "best.pt", tmp_path / "damaged.pt", **{entry: value})
    rc, _, err = call(infer, mp4, "--checkpoint", ckpt, "--boxes", box_split[1])
    assert rc == 2 and one_line(err) == "error: " + message.format(ckpt=ckpt)


# ------------------------------------------------- 7 + 10. class names from files, any encoding, no escapes

def renamed_split(split: Path, dst: Path, name: str) -> Path:
    """A copy of the box split whose class 0 is called `name`."""
    shutil.copytree(split, dst)
    old = "Pushing [something] from left to right"
    labels = {(name if k == old.replace("[", "").replace("]", "") else k): v
              for k, v in json.loads((split / "labels.json").read_text()).items()}
    (dst / "labels.json").write_text(json.dumps(labels))
    for n in ("train.json", "validation.json"):
        recs = json.loads((split / n).read_text())
        (dst / n).write_text(json.dumps([{**r, "template": name if r["template"] == old else r["template"]}
                                         for r in recs]))
    return dst


def test_evaluate_prints_a_class_name_the_terminal_encoding_lacks(run, box_split, tmp_path):
    name = "\U0001F600 smile"
    split = renamed_split(box_split[0], tmp_path / "split", name)
    names = torch.load(run / "best.pt", weights_only=True)["class_names"]
    ckpt = rewritten(run / "best.pt", tmp_path / "emoji.pt", class_names=[name, *names[1:]])
    r = cli("evaluate", "--checkpoint", ckpt, "--split", split, "--boxes", box_split[1],
            env={**ENV, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "\\U0001f600 smile" in r.stdout


def test_class_names_with_terminal_escapes_are_printed_escaped(run, box_split, mp4, tmp_path):
    from vislearn.video.actions.evaluate import main as evaluate
    from vislearn.video.actions.infer import main as infer

    names = torch.load(run / "best.pt", weights_only=True)["class_names"]
    ckpt = rewritten(run / "best.pt", tmp_path / "esc.pt", class_names=[ESC, *names[1:]], model_name="stin_oie")
    rc, out, err = call(infer, mp4, "--checkpoint", ckpt, "--boxes", box_split[1], "--topk", 4)
    assert rc == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err and "\\x1b]0;owned\\x07RED\\x1bc" in out
    split = renamed_split(box_split[0], tmp_path / "split", ESC)
    rc, out, err = call(evaluate, "--checkpoint", ckpt, "--split", split, "--boxes", box_split[1])
    assert rc == 0, err
    assert "\x1b" not in out + err and "\\x1b]0;owned\\x07RED\\x1bc" in out


def test_inspect_prints_ids_and_track_names_from_the_file_escaped(tmp_path):
    from vislearn.video.data.__main__ import main as data

    boxes = {"\x1b[2J1": [{"name": "\x1b[2J1/0001.jpg", "labels": [
        {"box2d": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}, "category": "cup", "standard_category": "0000",
         "gt_annotation": "object \x1b[5m0"}], "nr_instances": 1, "gt_placeholders": ["cup"]}]}
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(boxes))
    rc, out, err = call(data, "inspect", "--boxes", path)
    assert rc == 0, err
    assert "\x1b" not in out + err and "\\x1b[2J1" in out


# ---------------------------------------------------------------------- 8. `vislearn video data inspect | head`

def test_inspect_into_a_closed_pipe_ends_quietly(box_split):
    proc = subprocess.Popen([sys.executable, "-m", "vislearn", "video", "data", "inspect", "--boxes", str(box_split[1])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    proc.stdout.close()  # `| head` has read its lines and gone
    err = proc.stderr.read()
    assert (proc.wait(timeout=120), err) == (141, "")


# -------------------------------------------------------------------- 11. a labels file with a gap

def test_labels_with_a_gap_name_the_labels_file(box_split, tmp_path):
    split = tmp_path / "split"
    shutil.copytree(box_split[0], split)
    labels = json.loads((split / "labels.json").read_text())
    (split / "labels.json").write_text(json.dumps({k: str(int(v) * 2) for k, v in labels.items()}))
    rc, _, err = train_main("--dry-run", *run_args(box_split, tmp_path / "r", split=split))
    assert rc == 2 and one_line(err) == (f"error: {split / 'labels.json'}: label indices must be 0..K-1 without gaps "
                                         "(4 classes; missing: 1, 3)")
