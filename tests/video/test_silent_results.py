"""Issue 24, "Nothing lost, round two": inputs that used to give a silently wrong result (an unrelated
file taken for a finished run, a NaN detector, an overlapping split, ignored options, a default that
only fits real SSv2, a held-out share other than asked) are refused in one line or said in the log."""
import json
import math
import shutil

import pytest
import torch

from box_data import make_box_split
from vislearn.common.errors import UserError
from cli_helpers import one_line

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """3 encoded synthetic videos (96x96): boxes, videos and a split (its SSv2 train/validation lists)."""
    from vislearn.video.data.synthetic.generate import generate

    data = tmp_path_factory.mktemp("silent") / "data"
    generate(data, videos=3, seed=1, width=96, height=96)
    return data


# ------------------------------------------------------------------ 1. track-split --out FILE

def test_track_split_leaves_an_out_file_that_is_not_its_own_alone(synthetic, tmp_path, capsys):
    from vislearn.video.tracking.__main__ import main

    ids = [r["id"] for s in ("train", "validation")
           for r in json.loads((synthetic / f"something-something-v2-{s}.json").read_text())]
    args = ["track-split", "--split", str(synthetic), "--videos", str(synthetic / "videos"),
            "--detector", str(tmp_path / "det.pt"), "--quiet", "--out"]
    others = {"notes.txt": "my notes, not tracks\n", "list.json": "[1, 2, 3]",
              "other_videos.json": json.dumps({"99999": []}),  # a box JSON of other videos
              "fewer.json": json.dumps({ids[0]: []}),  # part of the split only
              "torn.json": json.dumps({v: [] for v in ids})[:-1]}
    for name, text in others.items():
        path = tmp_path / name
        path.write_text(text)
        capsys.readouterr()
        assert main([*args, str(path)]) == 2, name
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"error: {path}: exists and ") and "already complete" not in line, line
        assert path.read_text() == text  # untouched
    # a finished output of this split (what track_split writes) is still taken as done
    done = tmp_path / "done.json"
    done.write_text(json.dumps({v: [] for v in ids}, indent=1))
    assert main([*args, str(done)]) == 0
    assert "already complete" in capsys.readouterr().out


# ------------------------------------------------------------------ 2. NaN hyperparameters / weights

def detector_args(data, out, *extra):
    return ["train-detector", "--boxes", str(data / "annotations.json"), "--videos", str(data / "videos"),
            "--out", str(out), "--max-videos", "2", "--min-size", "64", "--max-size", "96", "--frames-per-video", "1",
            "--eval-frames-per-video", "1", "--batch-size", "2", "--warmup-iters", "1", "--quiet", "--threads", "1",
            *map(str, extra)]


def finite(path) -> bool:
    state = torch.load(path, weights_only=False)["model"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("flag,value", [("--lr", "nan"), ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "inf"),
                                        ("--weight-decay", "nan"), ("--weight-decay", "-1")])
def test_train_detector_refuses_hyperparameters_that_cannot_train(synthetic, tmp_path, capsys, flag, value):
    from vislearn.video.tracking.__main__ import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:  # argparse: refused while parsing, before anything is read
        main(detector_args(synthetic, out, "--epochs", 1, flag, value))
    assert e.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert f"argument {flag}: must be a finite number" in line and value in line
    assert not out.exists()


def test_train_detector_refuses_a_learning_rate_sgd_cannot_use(synthetic, tmp_path):
    from vislearn.video.tracking.train_detector import TrainOptions, train

    base = dict(out=str(tmp_path / "r"), boxes=str(synthetic / "annotations.json"), videos=str(synthetic / "videos"))
    for over, flag in ((dict(lr=1e300), "--lr"), (dict(momentum=float("nan")), "--momentum"),
                       (dict(clip_grad=float("inf")), "--clip-grad"), (dict(weight_decay=-1.0), "--weight-decay")):
        with pytest.raises(UserError, match=f"^{flag} .*: must be a finite number"):
            train(TrainOptions(**base, **over), log=lambda *a: None)
    assert not (tmp_path / "r").exists()


def test_train_detector_stops_when_the_weights_become_non_finite(synthetic, tmp_path, capsys, monkeypatch):
    """The issue's run: one step per epoch, so the loss of every step was finite and only the weights
    after the last update were NaN; best.pt held 3.4M NaN parameters and the exit code was 0."""
    from vislearn.video.tracking import train_detector
    from vislearn.video.tracking.__main__ import main

    original = train_detector.train_one_epoch

    def poisoned_from(bad_epoch):
        def run(model, loader, optimizer, scheduler, device, epoch, *a, **k):
            stats = original(model, loader, optimizer, scheduler, device, epoch, *a, **k)
            if epoch >= bad_epoch:  # what an lr of nan makes of the last update
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))
            return stats
        return run

    # the first epoch already diverges: nothing is written but the config
    monkeypatch.setattr(train_detector, "train_one_epoch", poisoned_from(0))
    out = tmp_path / "first"
    assert main(detector_args(synthetic, out, "--epochs", 1)) == 3
    line = one_line(capsys.readouterr().err)
    assert "weights became non-finite" in line and "(none yet)" in line
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()

    # a later epoch diverges: the last good checkpoint (epoch 0) stays, metrics.jsonl holds its epoch only
    monkeypatch.setattr(train_detector, "train_one_epoch", poisoned_from(1))
    out = tmp_path / "later"
    assert main(detector_args(synthetic, out, "--epochs", 3)) == 3
    line = one_line(capsys.readouterr().err)
    assert "epoch 1: the weights became non-finite" in line and str(out / "last.pt") in line
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 0 and finite(out / "last.pt")
    assert finite(out / "best.pt")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_train_detector_stops_on_a_diverging_loss_with_the_exit_code_of_train(synthetic, tmp_path, capsys):
    """lr 1e30: the first update leaves huge weights, the next loss is NaN: exit 3 as `vislearn video
    train` (EXIT_NAN), one line, the last good checkpoint kept."""
    from vislearn.video.actions.train import EXIT_NAN
    from vislearn.video.tracking.__main__ import main

    out = tmp_path / "run"
    assert main(detector_args(synthetic, out, "--epochs", 3, "--lr", "1e30")) == EXIT_NAN
    line = one_line(capsys.readouterr().err)
    assert "training diverged: epoch 1: loss is nan" in line and str(out / "last.pt") in line
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 0
    assert finite(out / "best.pt") and len((out / "metrics.jsonl").read_text().splitlines()) == 1


# ------------------------------------------------------------------ 4. --resume with other options

def test_train_detector_resume_refuses_options_it_would_ignore(synthetic, tmp_path, capsys):
    from vislearn.video.tracking.__main__ import main

    out = tmp_path / "run"
    assert main(detector_args(synthetic, out, "--epochs", 1, "--lr", "0.01")) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(detector_args(synthetic, out, "--epochs", 2, "--resume", "--lr", "0.5", "--seed", "3")) == 2
    line = one_line(capsys.readouterr().err)
    assert "--lr 0.5 (the run's: 0.01)" in line and "--seed 3 (the run's: 0)" in line and "--max-videos" not in line
    assert (out / "last.pt").read_bytes() == before
    # options equal to the run's (the same folder spelt otherwise) and what resume may change are fine
    args = detector_args(synthetic, out, "--epochs", 1, "--resume", "--lr", "0.01", "--workers", "0")
    args[args.index("--videos") + 1] += "/"
    assert main(args) == 0
    assert "resumed" in capsys.readouterr().out


# ------------------------------------------------------------------ 3. a video in train and validation

@pytest.fixture(scope="module")
def box_split(tmp_path_factory):
    return make_box_split(tmp_path_factory.mktemp("silent_boxes"), videos=40)


def train_args(split, boxes, out, **over):
    values = {"split": split, "boxes": boxes, "model": "stin", "model_args.feature_dim": 16, "epochs": 1,
              "batch_size": 4, "workers": 0, "frame_size": "[427,240]", "out": out, "device": "cpu", **over}
    return ["--dry-run", *[f"{k}={v}" for k, v in values.items()]]


def overlapping(box_split, tmp_path, shared: int):
    split = tmp_path / "split"
    shutil.copytree(box_split[0], split)
    train = json.loads((split / "train.json").read_text())
    val = json.loads((split / "validation.json").read_text())
    (split / "validation.json").write_text(json.dumps(val + train[:shared]))
    return split, [r["id"] for r in train[:shared]]


def test_training_refuses_a_split_with_a_video_in_train_and_validation(box_split, tmp_path, capsys):
    from vislearn.video.actions.train import main

    split, shared = overlapping(box_split, tmp_path, 3)
    for over in ({}, {"eval_set": ""}):  # evaluated or not: the split itself is wrong
        assert main(train_args(split, box_split[1], tmp_path / "run", **over)) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"error: {split / 'validation.json'}: 3 video id(s) also in the training list")
        assert all(i in line for i in shared)
    split, shared = overlapping(box_split, tmp_path / "many", 12)
    assert main(train_args(split, box_split[1], tmp_path / "run")) == 2
    line = one_line(capsys.readouterr().err)
    assert "12 video id(s)" in line and ", ".join(shared[:5]) + ", ... (12 in all)" in line
    assert not (tmp_path / "run").exists()
    assert main(train_args(box_split[0], box_split[1], tmp_path / "run")) == 0  # a clean split trains


def test_detector_training_refuses_a_split_with_a_video_in_train_and_validation(synthetic, tmp_path):
    from vislearn.video.tracking.train_detector import TrainOptions, gather_items

    ids = sorted(json.loads((synthetic / "annotations.json").read_text()), key=int)
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.json").write_text(json.dumps([{"id": i} for i in ids[:2]]))
    (split / "validation.json").write_text(json.dumps([{"id": i} for i in ids[1:]]))
    opts = TrainOptions(out=str(tmp_path / "r"), boxes=str(synthetic / "annotations.json"),
                        videos=str(synthetic / "videos"), split=str(split))
    with pytest.raises(UserError, match=rf"validation.json: 1 video id\(s\) also in the training list .*\({ids[1]}\)"):
        gather_items(opts, print)


# ------------------------------------------------------------------ 5. few-shot split's default

def test_fewshot_split_default_base_classes_follow_the_label_count(box_split, tmp_path, capsys):
    from vislearn.video.splits.__main__ import main

    split = box_split[0]
    out = tmp_path / "few"
    assert main(["fewshot", "--labels", str(split / "labels.json"), "--train", str(split / "train.json"),
                 "--val", str(split / "validation.json"), "--out", str(out), "--shots", "1", "2", "--quiet"]) == 0
    assert len(json.loads((out / "base_labels.json").read_text())) == 2  # half of the 4 classes
    assert len(json.loads((out / "finetune_labels.json").read_text())) == 2
    from vislearn.video.splits.fewshot import default_base_classes

    assert default_base_classes(174) == 88 and default_base_classes(18) == 9  # SSv2 as the paper; else half
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["fewshot", "--help"])
    assert "half the classes" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------ 6. held-out share in the log

def test_the_log_says_when_the_held_out_share_differs_from_the_asked_fraction(tmp_path, capsys):
    from vislearn.video.actions.train import main

    split, boxes = make_box_split(tmp_path / "small", videos=24)  # 18 training videos, 4 classes
    assert main(train_args(split, boxes, tmp_path / "run", holdout_fraction=0.1)) == 0
    out = capsys.readouterr().out
    assert "held out 22% of the training list (4 of 18 videos; asked 10%" in out
    assert "each class with two or more videos keeps at least one held-out video" in out
    split, boxes = make_box_split(tmp_path / "large", videos=160)  # 30 per class: 3 held out of each
    assert main(train_args(split, boxes, tmp_path / "run", holdout_fraction=0.1)) == 0
    assert "held out" not in capsys.readouterr().out
    from vislearn.video.actions.data import holdout_note

    assert holdout_note(0.1, 11, 100) is None and holdout_note(0.0, 0, 100) is None
    assert "a class with a single video holds none out" in holdout_note(0.5, 2, 10)


# ------------------------------------------------------------------ 7. config errors name the key

@pytest.mark.parametrize("override,message", [("epochs=0", "epochs=0: must be at least 1"),
                                              ("batch_size=-2", "batch_size=-2: must be at least 1"),
                                              ("lr=0", "lr=0.0: must be a finite number above 0"),
                                              ("lr=nan", "lr=nan: must be a finite number above 0")])
def test_config_errors_name_the_key(override, message):
    from vislearn.video.actions.config import load_config

    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert str(e.value) == message
    assert math.isfinite(load_config(None, ["lr=0.5"]).lr)
