"""`vislearn backbones train`: learning happens, a killed run resumes to the same weights, --weights/--freeze
leave the backbone as loaded, bad input is one line and exit 2. Tiny runs on sklearn's digits at 32 px (made here)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vislearn.backbones.registry import create_backbone
from vislearn.backbones.train import TrainConfig, build_model, build_optimizer, fit, main

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


@dataclass
class Images:
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple


def digits(size: int = 32, n_train: int = 192, n_val: int = 64, n_test: int = 64) -> dict[str, Images]:
    """sklearn's 8x8 digits upsampled to `size`, grey as RGB uint8: train / val / test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16
    x = F.interpolate(x, size=(size, size), mode="bilinear").mul(255).round().clamp(0, 255).to(torch.uint8)
    x = x.expand(-1, 3, -1, -1).contiguous()
    y = torch.tensor(d.target, dtype=torch.long)
    cuts = [0, n_train, n_train + n_val, n_train + n_val + n_test]
    classes = tuple(str(i) for i in range(10))
    return {s: Images(x[a:b], y[a:b], classes) for s, a, b in zip(("train", "val", "test"), cuts, cuts[1:])}


def tiny(out: Path, **kw) -> TrainConfig:
    args = dict(backbone="vit_c_tiny", data="digits", out=str(out), img_size=32, epochs=2, warmup_epochs=0.5,
                batch_size=32, lr=1e-3, threads=1)
    return TrainConfig(**{**args, **kw})


def test_overfits_a_small_batch():
    data = digits(n_train=32)["train"]
    cfg = tiny(Path("unused"), lr=2e-3, wd=0.0)
    torch.manual_seed(0)
    model = build_model(cfg, 10)
    opt = build_optimizer(cfg, model)
    x = (data.images.float() / 255 - 0.5) / 0.5
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), data.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == data.labels).float().mean())
    assert acc > 0.5  # chance is 0.1


def test_fit_writes_the_run(tmp_path):
    res = fit(tiny(tmp_path / "run"), data=digits(), log=lambda *a: None)
    run = tmp_path / "run"
    for name in ("config.json", "last.pt", "best.pt", "metrics.jsonl", "results.json"):
        assert (run / name).is_file(), name
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert {"val_error", "test_error"} <= set(res["final"]) and res["best"]["epoch"] in (0, 1)
    # a second fit without resume is refused; with resume, the finished run is returned as it is
    with pytest.raises(Exception, match="already holds a run"):
        fit(tiny(tmp_path / "run"), data=digits(), log=lambda *a: None)
    assert fit(tiny(tmp_path / "run"), data=digits(), resume=True, log=lambda *a: None) == res


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from test_train import digits, tiny
from vislearn.backbones.train import fit
from pathlib import Path

def log(msg, *a, **k):
    print(msg, flush=True)
    if msg.startswith("epoch 1/"):  # logged after the epoch's checkpoint is written: die like a killed job
        os.kill(os.getpid(), signal.SIGKILL)

fit(tiny(Path({out!r}), epochs=3), data=digits(), log=log)
"""


def test_resume_after_kill_gives_the_same_weights(tmp_path):
    killed = tmp_path / "killed"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(killed))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "last.pt").is_file() and not (killed / "results.json").exists()
    assert torch.load(killed / "last.pt", weights_only=True)["epoch"] == 0

    resumed = fit(tiny(killed, epochs=3), data=digits(), resume=True, log=lambda *a: None)
    whole = fit(tiny(tmp_path / "whole", epochs=3), data=digits(), log=lambda *a: None)
    a = torch.load(killed / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert resumed["final"] == whole["final"]
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("with_head", [False, True])
def test_weights_and_freeze_leave_the_backbone_unchanged(tmp_path, with_head):
    torch.manual_seed(1)
    encoder = create_backbone("vit_c_tiny", img_size=32, num_classes=1000 if with_head else 0)
    for m in encoder.modules():  # BatchNorm statistics that a moving average would change
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    torch.save({"model": encoder.state_dict()}, tmp_path / "encoder.pt")
    fit(tiny(tmp_path / "probe", epochs=1, weights=str(tmp_path / "encoder.pt"), freeze=True), data=digits(),
        log=lambda *a: None)
    state = torch.load(tmp_path / "probe" / "last.pt", weights_only=True)["model"]
    own = {k: v for k, v in encoder.state_dict().items() if not k.startswith("head.")}
    assert set(state) - {"head.weight", "head.bias"} == set(own)
    for k, v in own.items():
        assert torch.equal(state[k], v), k
    assert state["head.weight"].shape == (10, 192)


def one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = ["--out", str(tmp_path / "run"), "--data", "digits"]
    assert "unknown backbone 'vit_x'" in one_line_exit_2(["--backbone", "vit_x", *out], capsys)
    err = one_line_exit_2(["--weights", str(tmp_path / "nope.pt"), *out], capsys)
    assert "nope.pt: weights file not found" in err
    assert "--lr: must be a number > 0" in one_line_exit_2(["--lr", "0", *out], capsys)
    assert "--lr" in one_line_exit_2(["--lr=-1e-3", *out], capsys)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert "bad.pt" in one_line_exit_2(["--weights", str(tmp_path / "bad.pt"), "--freeze", *out], capsys)
    assert not (tmp_path / "run").exists()


def test_command_line_error_through_vislearn(tmp_path):
    """The real entry point: `python -m vislearn backbones train` with a bad value, one line, exit 2."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "vislearn", "backbones", "train", "--backbone", "vit_c_tiny",
                           "--lr", "-1", "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [textwrap.dedent("error: --lr: must be a number > 0, got -1.0")]


def test_claims_table_and_edf_from_finished_runs(tmp_path):
    """`vislearn backbones claims`: with every run of the sweep finished (results.json in each subfolder), nothing
    is trained again, the choice of (lr, wd) is made on val, and the table and the EDF plot are written."""
    from vislearn.backbones import claims
    from vislearn.common.jsonio import write_json

    b = claims.BUDGETS["smoke"]

    def fake(run, val, test):
        write_json(tmp_path / run.name / "results.json", {
            "final": {"epoch": 1, "val_error": val, "test_error": test}, "best": {"epoch": 1, "val_error": val,
                                                                                 "test_error": test},
            "classes": 10, "diverged": None})

    for run in claims.search_runs(b):
        # the lowest val error at lr 0.03 for SGD; its test error is the worst (never chosen on test)
        val = 0.3 if run.optimizer == "sgd" and run.lr == 0.03 else 0.4
        fake(run, val, 0.9 if val == 0.3 else 0.1)
    for run in claims.stability_runs(b):
        fake(run, 0.5 if "vit_c" in run.model else 0.7, 0.5)
    for model in claims.MODELS:
        for opt in claims.OPTIMIZERS:
            lr = 0.03 if opt == "sgd" else 1e-3
            for run in claims.final_runs(b, model, opt, lr, 0.05 if opt == "adamw" else 1e-4):
                fake(run, 0.3, 0.8)
    results = claims.sweep(b, tmp_path, workers=2, nice=0, data=None, log=lambda *a: None)
    summary = claims.summarise(b, results)
    summary["flops_ratio"] = 1.0
    rows = {(r["model"], r["optimizer"]): r for r in summary["rows"]}
    assert len(rows) == 4 and rows[("vit_p_tiny", "sgd")]["lr"] == 0.03
    assert rows[("vit_p_tiny", "sgd")]["test_mean"] == pytest.approx(85.0)  # seeds 0 (search) and 1
    assert summary["stability"]["vit_c_tiny_adamw"]["median"] == pytest.approx(50.0)
    assert "| vit_c_tiny | adamw |" in claims.markdown(summary)
    claims.plot_edf(summary, tmp_path / "edf.png")
    assert (tmp_path / "edf.png").stat().st_size > 1000
