"""The training CLI with real processes: dry run, config errors, exact resume after SIGKILL, NaN stop, torchrun."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from box_data import make_box_split

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def train_cmd(*args, launcher=None):
    head = launcher or [sys.executable, "-m", "vislearn.video.actions.train"]
    return [*head, *map(str, args)]


def run(*args, launcher=None, timeout=300):
    return subprocess.run(train_cmd(*args, launcher=launcher), capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def box_split(tmp_path_factory):
    return make_box_split(tmp_path_factory.mktemp("boxes"), videos=160)


def common(box_split, out, **over):
    split, boxes = box_split
    values = {"split": split, "boxes": boxes, "model": "stin_oie", "model_args.feature_dim": 32,
              "epochs": 3, "batch_size": 8, "workers": 0, "frame_size": "[427,240]", "lr": 0.05,
              "lr_steps": "[2]", "out": out, "log_every": 0, "device": "cpu"}
    values.update(over)
    return [f"{k}={v}" for k, v in values.items()]


def metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_dry_run_prints_official_parameter_count(sample_splits, tmp_path, box_split):
    # the real 174-class label file with the official STIN+OIE+NL architecture
    split, boxes = box_split
    real = tmp_path / "split"
    shutil.copytree(split, real)
    labels = json.loads((sample_splits / "compositional" / "labels.json").read_text())
    (real / "labels.json").write_text(json.dumps(labels))
    recs = [r for r in json.loads((split / "train.json").read_text())
            if r["template"].replace("[", "").replace("]", "") in labels]
    (real / "train.json").write_text(json.dumps(recs[4:]))
    (real / "validation.json").write_text(json.dumps(recs[:4]))  # no video on both sides (refused)
    r = run("--dry-run", f"split={real}", f"boxes={boxes}", "model=stin_oie_nl", f"out={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "parameters: 1801646"
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_lists_valid_ones(tmp_path, box_split):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: stin\nlearning_rate: 0.1\n")
    r = run("--config", cfg, "--dry-run")
    assert r.returncode == 2
    assert "unknown config key 'learning_rate'" in r.stderr and "lr," in r.stderr and "Traceback" not in r.stderr
    r = run("--dry-run", *common(box_split, tmp_path / "r", model="stin_huge"))
    assert r.returncode == 2 and "unknown model 'stin_huge'" in r.stderr


def test_kill_and_resume_matches_uninterrupted(tmp_path, box_split):
    # small batches: ~30 steps per epoch, so the kill lands inside an epoch
    over = dict(epochs=5, batch_size=4, lr=0.02, lr_steps="[3]")
    full = tmp_path / "full"
    r = run(*common(box_split, full, **over))
    assert r.returncode == 0, r.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(*common(box_split, killed, **over)), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.1)  # into the next epoch
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = torch.load(killed / "last.pt", weights_only=True)["epoch"]
    assert done_before < 4, "the kill came after the last epoch"
    r = run(*common(box_split, killed, **over), "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout
    a, b = metrics(full), metrics(killed)
    assert [m["epoch"] for m in b] == [0, 1, 2, 3, 4]
    for m in a:  # where the time goes, per epoch
        assert m["train_samples_per_s"] == pytest.approx(m["train_samples"] / m["train_seconds"], rel=1e-6)
        assert 0 < m["train_data_seconds"] < m["train_seconds"]
    for ma, mb in zip(a, b):
        assert ma["train_loss"] == pytest.approx(mb["train_loss"], rel=1e-6, abs=1e-7)
        assert ma["holdout_top1"] == mb["holdout_top1"]
    ra = json.loads((full / "results.json").read_text())["evaluation"]
    rb = json.loads((killed / "results.json").read_text())["evaluation"]
    assert ra["top1"] == rb["top1"] and ra["top5"] == rb["top5"]


def test_refuses_to_overwrite_a_run(tmp_path, box_split):
    out = tmp_path / "run"
    assert run(*common(box_split, out, epochs=1)).returncode == 0
    r = run(*common(box_split, out, epochs=1))
    assert r.returncode == 2 and "--resume" in r.stderr
    # continuing it on other boxes (say, an earlier tracker's) is refused, and the run is left as it was
    other = shutil.copy(box_split[1], tmp_path / "other_boxes.json")
    before = (out / "last.pt").read_bytes()
    r = run(*common(box_split, out, epochs=1, boxes=other), "--resume")
    assert r.returncode == 2 and "trained on other data (boxes: " in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (out / "last.pt").read_bytes() == before


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, box_split):
    out = tmp_path / "nan"
    # epoch 0 trains normally, then the learning rate jumps to 1e9 without clipping: the loss explodes
    r = run(*common(box_split, out, epochs=6, lr_steps="[1]", lr_gamma=1e11, clip_grad_norm=0))
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "loss is" in r.stderr and "last good checkpoint" in r.stderr
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert ckpt["epoch"] == len(metrics(out)) - 1


def test_results_and_plots_written(tmp_path, box_split):
    out = tmp_path / "run"
    r = run(*common(box_split, out, epochs=6, lr=0.05, lr_steps="[4]"))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    ev = res["evaluation"]
    assert ev["videos"] == 40 and ev["set"] == "validation"
    assert ev["top1"] > 0.7  # four motion directions are easy for STIN (chance: 0.25)
    assert set(ev["per_class"]) == {"Pushing something from left to right", "Pushing something from right to left",
                                    "Moving something up", "Moving something down"}
    for f in ("curves.png", "per_class.png", "confusion.png", "scores.npz", "config.yaml", "best.pt"):
        assert (out / f).stat().st_size > 0
    ckpt = torch.load(out / "best.pt", weights_only=False)
    assert ckpt["class_names"][0] == "Pushing something from left to right"
    assert ckpt["model_name"] == "stin_oie"


def test_torchrun_two_processes_match_one_process(tmp_path, box_split):
    one = tmp_path / "one"
    # plain STIN: OIE's embedding scales its gradient by in-batch frequencies (scale_grad_by_freq, as the
    # official code), which differ between a per-process batch and the global one
    r = run(*common(box_split, one, epochs=2, model="stin"))
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                "-m", "vislearn.video.actions.train"]
    r = run(*common(box_split, two, epochs=2, model="stin"), launcher=torchrun)
    assert r.returncode == 0, r.stderr
    a, b = metrics(one), metrics(two)
    assert len(a) == len(b) == 2
    for ma, mb in zip(a, b):
        assert ma["train_samples"] == mb["train_samples"]
        assert ma["train_loss"] == pytest.approx(mb["train_loss"], rel=1e-4)
        assert ma["holdout_top1"] == pytest.approx(mb["holdout_top1"])
    sa = torch.load(one / "last.pt", weights_only=False)["model"]
    sb = torch.load(two / "last.pt", weights_only=False)["model"]
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-3, atol=1e-3)


def test_the_log_says_how_the_checkpoint_was_chosen(tmp_path, box_split):
    """With nothing held out of train, the evaluated checkpoint is the last epoch's, and the log says so."""
    held = run(*common(box_split, tmp_path / "held", epochs=1))
    none = run(*common(box_split, tmp_path / "none", epochs=1, holdout_fraction=0))
    assert held.returncode == 0 and none.returncode == 0, (held.stderr, none.stderr)
    assert "chosen on the held-out part of train" in held.stdout
    assert "no videos were held out" in none.stdout and "chosen on the held-out" not in none.stdout
