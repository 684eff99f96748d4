"""Humanoid-locomotion training (`vislearn control humanoid train-teacher` / `train-student`): the KL weight anneals to
0 when the schedule says and a real student run logs that schedule; the same seed gives the same weights; a run
killed by SIGKILL after a checkpoint and resumed ends with the weights of one never stopped (teacher and transformer
student). Real MuJoCo and torch, tiny sizes (a few hundred environment steps)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.humanoid import train
from vislearn.control.humanoid.train_student import main as student_main
from vislearn.control.humanoid.train_teacher import main as teacher_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import call  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]
TEACHER_ARGS = ("--steps", "512", "--minutes", "0", "--num-envs", "4", "num_steps=16", "eval_episodes=0", "threads=1")
# the student: 8 updates of 2 x 8 steps; history 4 and one minibatch keep the transformer's update short
STUDENT_ARGS = ("--steps", "128", "--minutes", "0", "--num-envs", "2", "num_steps=8", "history=4", "epochs=1",
                "minibatches=1", "kl_coef=1.0", "kl_anneal=0.5", "eval_episodes=0", "threads=1")
_RUNS: dict[str, Path] = {}


def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny teacher run and a tiny transformer-student run of it (CLI, in-process), made once per session and
    shared by this module and test_hum_cli.py."""
    if not _RUNS:
        root = tmp_path_factory.mktemp("hum_runs")
        rc, _, err = call(teacher_main, "--out", root / "teacher", *TEACHER_ARGS)
        assert rc == 0, err
        rc, _, err = call(student_main, "--teacher", root / "teacher" / "policy.pt", "--out", root / "student",
                          *STUDENT_ARGS)
        assert rc == 0, err
        _RUNS.update(teacher=root / "teacher", student=root / "student")
    return _RUNS


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "policy.pt", weights_only=True)
    return {**{f"policy.{k}": v for k, v in state["policy"].items()},
            **{f"critic.{k}": v for k, v in state["critic"].items()}}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 10
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_kl_weight_reaches_zero_when_the_schedule_says():
    cfg = train.LocoConfig(kl_coef=2.0, kl_anneal=0.5)
    assert train.kl_weight(cfg, 0.0) == 2.0
    assert train.kl_weight(cfg, 0.25) == pytest.approx(1.0)
    assert train.kl_weight(cfg, 0.5) == 0.0 and train.kl_weight(cfg, 0.9) == 0.0
    assert train.kl_weight(train.LocoConfig(kl_coef=1.0, kl_anneal=1.0), 0.75) == pytest.approx(0.25)
    assert train.kl_weight(train.LocoConfig(kl_coef=1.0, kl_anneal=0.0), 0.0) == 0.0


def test_teacher_run_writes_its_files(runs):
    for name in ("config.json", "last.pt", "metrics.jsonl", "policy.pt", "results.json", "curves.png"):
        assert (runs["teacher"] / name).is_file(), name
    res = json.loads((runs["teacher"] / "results.json").read_text())
    assert res["arch"] == "teacher" and res["updates"] == 8 and res["steps"] == 512
    assert [r["steps"] for r in rows(runs["teacher"])] == [64 * k for k in range(1, 9)]
    assert all(r["kl_lambda"] == 0.0 for r in rows(runs["teacher"]))  # a teacher has no teacher


def test_student_run_logs_the_annealed_kl_weight(runs):
    """kl_lambda per update: 1 - progress / 0.5, progress = (update - 1) / 8, so 1, 0.75, 0.5, 0.25, then 0."""
    metrics = rows(runs["student"])
    assert len(metrics) == 8
    lam = [r["kl_lambda"] for r in metrics]
    assert lam == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0])
    assert all(a > b for a, b in zip(lam[:5], lam[1:5]))
    # the KL to the teacher is a loss term exactly while lambda > 0
    assert all(r["kl_teacher"] is not None and r["kl_teacher"] >= 0 for r in metrics[:4])
    assert all(r["kl_teacher"] is None for r in metrics[4:])
    cfg = json.loads((runs["student"] / "config.json").read_text())
    assert cfg["role"] == "student" and cfg["student"] == "transformer"
    assert cfg["teacher"] == str(runs["teacher"] / "policy.pt")
    meta = torch.load(runs["student"] / "policy.pt", weights_only=True)
    assert meta["arch"] == "transformer" and meta["history"] == 4


def test_same_seed_gives_the_same_weights(tmp_path):
    def run(name: str, seed: int) -> Path:
        cfg = train.load_config(train.CONFIGS / "teacher.yaml", [
            "role=teacher", "steps=32", "minutes=0", "num_envs=2", "num_steps=8", "epochs=1", "minibatches=2",
            "eval_episodes=0", "threads=1", f"seed={seed}"])
        train.train(cfg, tmp_path / name, log=lambda *a: None)
        return tmp_path / name

    a, b, c = run("a", 3), run("b", 3), run("c", 4)
    assert_same_weights(a, b)
    assert [r["value_loss"] for r in rows(a)] == [r["value_loss"] for r in rows(b)]
    wa, wc = weights(a), weights(c)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)  # another seed: other weights


def kill_after_checkpoint(command: str, out: Path, args: tuple) -> None:
    """Run `vislearn control humanoid COMMAND` as a process and SIGKILL it once a checkpoint is written (last.pt and
    its metrics rows), mid-run."""
    proc = subprocess.Popen([sys.executable, "-m", "vislearn.control.humanoid", command, "--out", str(out), *args],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.jsonl"
            if (out / "last.pt").is_file() and metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (exit {proc.returncode}): {err[-2000:]}"
    assert not (out / "policy.pt").exists()
    assert torch.load(out / "last.pt", weights_only=True)["update"] >= 2  # tensors and plain data only


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_resume_after_sigkill_gives_the_same_weights(role, runs, tmp_path):
    if role == "teacher":
        main, command = teacher_main, "train-teacher"
        args = ("--steps", "256", "--minutes", "0", "--num-envs", "2", "num_steps=8", "epochs=1", "minibatches=2",
                "ckpt_every=2", "eval_episodes=0", "threads=1")  # 16 updates, a checkpoint every 2
    else:
        main, command = student_main, "train-student"
        args = ("--teacher", str(runs["teacher"] / "policy.pt"), "--steps", "192", "--minutes", "0", "--num-envs", "2",
                "num_steps=8", "history=4", "epochs=1", "minibatches=1", "ckpt_every=2", "eval_episodes=0",
                "threads=1")  # 12 updates
    kill_after_checkpoint(command, tmp_path / "killed", args)
    rc, out, err = call(main, "--out", tmp_path / "killed", *args, "--resume")
    assert rc == 0, err
    assert "resumed" in out
    rc, _, err = call(main, "--out", tmp_path / "whole", *args)
    assert rc == 0, err
    assert_same_weights(tmp_path / "killed", tmp_path / "whole")
    a, b = rows(tmp_path / "killed"), rows(tmp_path / "whole")
    assert [r["update"] for r in a] == [r["update"] for r in b] == list(range(1, len(b) + 1))
    assert [r["value_loss"] for r in a] == [r["value_loss"] for r in b]
    assert [r["mean_return"] for r in a] == [r["mean_return"] for r in b]
