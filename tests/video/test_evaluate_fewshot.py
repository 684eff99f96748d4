"""Evaluation CLI (every video, ensembles, errors) and the few-shot protocol, with real processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vislearn.video.actions.fewshot import mean_ci
from box_data import make_box_split

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def py(*args, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=timeout)


def train_args(split, boxes, out, **over):
    values = {"split": split, "boxes": boxes, "model": "stin", "model_args.feature_dim": 32, "epochs": 3,
              "batch_size": 8, "workers": 0, "frame_size": "[427,240]", "lr": 0.05, "lr_steps": "[2]",
              "out": out, "device": "cpu"}
    values.update(over)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    split, boxes = make_box_split(root, videos=101)  # 25 validation videos: not a multiple of the batch
    runs = []
    for seed, model in ((0, "stin"), (1, "stin_oie")):
        out = root / f"run{seed}"
        r = py("-m", "vislearn.video.actions.train", *train_args(split, boxes, out, seed=seed, model=model))
        assert r.returncode == 0, r.stderr
        runs.append(out)
    return split, boxes, runs


def test_evaluate_scores_every_video_and_matches_training(trained, tmp_path):
    split, boxes, runs = trained
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", runs[0] / "best.pt", "--batch-size", 8, "--workers", 0,
           "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    summary = res["models"][str(runs[0] / "best.pt")]
    assert summary["videos"] == 26  # 101 - 75 training videos, the last partial batch included
    trained_eval = json.loads((runs[0] / "results.json").read_text())["evaluation"]
    assert summary["top1"] == pytest.approx(trained_eval["top1"])
    scores = np.load(tmp_path / "ev" / "scores.npz")
    assert scores["scores"].shape == (26, 4)
    np.testing.assert_allclose(scores["scores"].sum(1), 1.0, rtol=1e-5)


def test_ensemble_is_the_weighted_mean_of_scores(trained, tmp_path):
    split, boxes, runs = trained
    outs = []
    for i, run in enumerate(runs):
        r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", run / "best.pt", "--workers", 0, "--out", tmp_path / f"e{i}")
        assert r.returncode == 0, r.stderr
        outs.append(np.load(tmp_path / f"e{i}" / "scores.npz"))
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", runs[0] / "best.pt", "--ensemble", runs[1] / "best.pt",
           "--weights", 1, 3, "--workers", 0, "--out", tmp_path / "ens")
    assert r.returncode == 0, r.stderr
    fused = np.load(tmp_path / "ens" / "scores.npz")
    np.testing.assert_allclose(fused["scores"], (outs[0]["scores"] + 3 * outs[1]["scores"]) / 4, rtol=1e-5)
    res = json.loads((tmp_path / "ens" / "results.json").read_text())
    expected = float((fused["scores"].argmax(1) == fused["label"]).mean())
    assert res["ensemble"]["top1"] == pytest.approx(expected)
    assert "ensemble (1, 3)" in r.stdout


def test_evaluate_bad_inputs(trained, tmp_path):
    split, boxes, runs = trained
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", tmp_path / "nope.pt")
    assert r.returncode == 2 and "nope.pt: checkpoint not found" in r.stderr
    broken = tmp_path / "broken.pt"
    broken.write_bytes((runs[0] / "best.pt").read_bytes()[:1000])
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", broken)
    assert r.returncode == 2 and "broken.pt: not a checkpoint this tool can load safely" in r.stderr and "Traceback" not in r.stderr
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", runs[0] / "best.pt", "--views", "two")
    assert r.returncode == 2 and "--views" in r.stderr
    other = tmp_path / "split"
    other.mkdir()
    (other / "labels.json").write_text(json.dumps({"Moving something up": "0", "Moving something down": "1"}))
    (other / "validation.json").write_text("[]")
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", runs[0] / "best.pt", "--split", other)
    assert r.returncode == 2 and "classes differ" in r.stderr


def test_mean_ci():
    m, h = mean_ci([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6)
    assert h == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert mean_ci([0.3]) == (0.3, 0.0)


def test_fewshot_protocol_end_to_end(tmp_path):
    split, boxes = make_box_split(tmp_path, videos=120)
    fs = tmp_path / "fewshot"
    r = py("-m", "vislearn.video", "splits", "fewshot", "--labels", split / "labels.json", "--train", split / "train.json",
           "--val", split / "validation.json", "--out", fs, "--base-classes", 2, "--shots", 2, 4, "--draws", 2)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    r = py("-m", "vislearn.video.actions.fewshot", "--fewshot", fs, "--draws", 2, "--finetune-epochs", 3,
           *train_args(split, boxes, out, epochs=2), timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "fewshot_results.json").read_text())
    assert set(res["shots"]) == {"2", "4"}
    for k in ("2", "4"):
        draws = res["shots"][k]["draws"]
        assert [d["draw"] for d in draws] == [0, 1]
        m, h = mean_ci([d["top1"] for d in draws])
        assert res["shots"][k]["top1_mean"] == pytest.approx(m) and res["shots"][k]["top1_ci95"] == pytest.approx(h)
        # the few-shot page written at the end shows it (and links the base run's own page)
        page = (out / "report.html").read_text()
        assert f"{100 * m:.1f} ± {100 * h:.1f}</span>" in page and 'href="base/report.html"' in page
    # fine-tuning trained only the output layer (a new one: other classes); the rest is the base model
    import torch

    base = torch.load(out / "base" / "best.pt", weights_only=False)
    ft = torch.load(out / "finetune" / "2shot" / "draw_1" / "best.pt", weights_only=True)
    assert len(ft["class_names"]) == 2 and set(ft["class_names"]).isdisjoint(base["class_names"])
    changed = [k for k in base["model"] if not torch.equal(base["model"][k], ft["model"][k])]
    assert changed == ["classifier.4.weight", "classifier.4.bias"], changed
    # the novel classes never appear in base training
    base_train = json.loads((out / "base" / "split" / "train.json").read_text())
    assert {r["template"].replace("[", "").replace("]", "") for r in base_train}.isdisjoint(ft["class_names"])
    # the 2-shot fine-tuning set really had 2 videos per novel class
    res2 = json.loads((out / "finetune" / "2shot" / "draw_0" / "results.json").read_text())
    assert res2["train_videos"] == 4 and res2["evaluation"]["videos"] > 0
    # the fine-tuned checkpoint alone scores the novel validation set as the stage did
    ev = tmp_path / "ev"
    fs_split = tmp_path / "novel"
    fs_split.mkdir()
    (fs_split / "labels.json").write_text((fs / "finetune_labels.json").read_text())
    (fs_split / "validation.json").write_text((fs / "finetune_2shot_validation.json").read_text())
    r = py("-m", "vislearn.video.actions.evaluate", "--checkpoint", out / "finetune" / "2shot" / "draw_0" / "best.pt",
           "--split", fs_split, "--boxes", boxes, "--workers", 0, "--out", ev)
    assert r.returncode == 0, r.stderr
    assert json.loads((ev / "results.json").read_text())["models"][str(out / "finetune" / "2shot" / "draw_0" /
                                                                      "best.pt")]["top1"] == pytest.approx(
        res2["evaluation"]["top1"])
