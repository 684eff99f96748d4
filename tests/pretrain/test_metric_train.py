"""`vislearn pretrain metric` and `retrieve` on digits-modes (small CNN on 8x8 digits): the loss falls on a tiny
run, a run killed after a checkpoint resumes to the same weights, retrieval prints the top-k and writes a contact
sheet, and user mistakes are one line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import call, default_sigint, one_line
from vislearn.pretrain.metric import retrieve, train
from vislearn.pretrain.metric.train import MetricConfig

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "digits-modes", "--steps", "60", "--eval-every", "20", "--per-class", "16", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("metric") / "run"
    cfg = MetricConfig(data="digits-modes", out=str(out), loss="triplet", positives="all", steps=60, eval_every=20,
                       per_class=16, threads=1)
    return out, train.train(cfg, log=lambda *a: None)


def test_tiny_run_lowers_the_loss_and_writes_its_folder(tiny_run):
    out, results = tiny_run
    rows = [__import__("json").loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["loss"] < rows[0]["loss"]
    for name in ("config.json", "last.pt", "embedder.pt", "results.json", "curves.png", "embeddings.png",
                 "index.html"):
        assert (out / name).is_file(), name
    assert 0.5 <= results["heldout"]["recall@1"] <= results["heldout"]["recall@8"] <= 1.0
    assert 2 <= results["train"]["subclusters"]["kept"] <= results["train"]["subclusters"]["modes"] == 6
    assert "curves.png" in (out / "index.html").read_text()


def test_resume_after_a_kill_gives_the_same_weights(tmp_path):
    args = [*TINY, "--steps", "120", "--positives", "nearest", "--loss", "margin"]
    rc, _, err = call(train.main, *args, "--out", tmp_path / "whole")
    assert rc == 0, err
    proc = subprocess.Popen([sys.executable, "-m", "vislearn", "pretrain", "metric", *args, "--out",
                             str(tmp_path / "cut")], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"]
    assert step < 120, "the run ended before the kill: nothing was tested"
    rc, _, err = call(train.main, *args, "--out", tmp_path / "cut", "--resume")
    assert rc == 0, err
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_retrieve_prints_top_k_and_writes_a_contact_sheet(tiny_run, tmp_path):
    from vislearn.backbones.imagesets import load_images

    out, _ = tiny_run
    test = load_images("digits", "test", size=8)
    for digit in (3, 7):  # a held-out class (3+4) and a training one (0+7), by folder name
        (tmp_path / "q" / str(digit)).mkdir(parents=True)
        i = int((test.labels == digit).nonzero()[0, 0])
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(tmp_path / "q" / str(digit) / "a.png")
    rc, stdout, err = call(retrieve.main, "--run", out, "--query", tmp_path / "q", "--top-k", "4", "--out",
                           tmp_path / "sheet.png")
    assert rc == 0, err
    lines = stdout.splitlines()
    assert lines[0].endswith("(class 3+4)") and lines[5].endswith("(class 0+7)")
    ranks = [line.split()[0] for line in lines[1:5]]
    assert ranks == ["1.", "2.", "3.", "4."]
    dists = [float(line.split()[3]) for line in lines[1:5]]
    assert dists == sorted(dists) and dists[0] < 1e-4  # the query image is in the test gallery
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape[0] == 2 * 70 and sheet.shape[1] == 5 * 70 + 8


@pytest.mark.parametrize("case", ["data", "steps", "exists", "settings", "no_run", "bad_image", "gallery"])
def test_bad_input_is_one_line(tiny_run, tmp_path, case):
    out, _ = tiny_run
    main, args, expect = train.main, [*TINY, "--out", tmp_path / "r"], ""
    if case == "data":
        args[1], expect = "cifar-modes", "must be one of objects-modes, digits-modes"
    elif case == "steps":
        args[3], expect = "0", "steps=0: must be at least 1"
    elif case == "exists":
        args[-1], expect = out, "already holds a run"
    elif case == "settings":
        args[-1], expect = out, "started with other settings"
        args += ["--resume", "--lr", "0.01"]
    else:
        (tmp_path / "q").mkdir()
        (tmp_path / "q" / "broken.png").write_bytes(b"not a png")
        main = retrieve.main
        args = ["--run", out, "--query", tmp_path / "q", "--out", tmp_path / "s.png"]
        if case == "no_run":
            args[1], expect = tmp_path / "nothing", "run folder not found"
        elif case == "bad_image":
            expect = "broken.png: not a readable image"
        else:
            (tmp_path / "q" / "broken.png").unlink()
            Image.new("RGB", (8, 8)).save(tmp_path / "q" / "ok.png")
            args += ["--gallery", "objects-modes:test"]
            expect = "the run was trained on digits-modes"
    rc, _, err = call(main, *args)
    assert rc == 2 and one_line(err).startswith("error: ") and expect in err, err
