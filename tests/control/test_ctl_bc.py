"""`vislearn control bc` with real demonstrations, encoders and torch: the run's files and evaluation, frozen vs
trained encoders, the feature cache, exact continuation after SIGKILL, torchrun with 2 processes, bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vislearn.control.agent import load_agent
from vislearn.control.bc import BCConfig, main, train_bc
from vislearn.control.demos import record_demos
from vislearn.control.encoders import build_encoder, parse_spec
from vislearn.control.envs import RenderSettings
from vislearn.control.features import cache_paths, cached_features

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("bc") / "reach"
    record_demos("reach", 2, out, RenderSettings(size=32), num_envs=1, **QUIET)
    return out


def cfg(demos, **kw) -> BCConfig:
    base = dict(demos=str(demos), encoder="state", epochs=4, warmup_epochs=1, batch_size=32, device="cpu")
    return BCConfig(**{**base, **kw})


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["policy"]


def test_state_bc_writes_the_run_and_evaluates_on_eval_seeds(demos, tmp_path):
    results, agent = train_bc(cfg(demos, epochs=20, eval_episodes=2, eval_num_envs=1), tmp_path / "run", **QUIET)
    run = tmp_path / "run"
    for name in ("config.json", "last.pt", "metrics.jsonl", "policy.pt", "results.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and rows[-1]["loss"] < rows[0]["loss"]
    assert json.loads((run / "results.json").read_text()) == results
    assert 0.0 <= results["success_rate"] <= 1.0
    assert [e["seed"] for e in results["eval"]["per_episode"]] == [0, 1]  # EVAL_SEEDS
    loaded, ckpt = load_agent(run / "policy.pt", "reach")
    assert ckpt["method"] == "bc" and ckpt["encoder"] == "state" and "encoder_state" not in ckpt
    obs = {"state": np.random.default_rng(0).normal(size=(3, 39)), "proprio": np.zeros((3, 8), np.float32)}
    np.testing.assert_allclose(loaded(obs), agent(obs), rtol=0, atol=1e-6)


def test_a_frozen_encoder_is_unchanged_and_a_scratch_encoder_is_trained(demos, tmp_path):
    spec = "random:vit_p_tiny@32"
    _, agent = train_bc(cfg(demos, encoder=spec, seed=3), tmp_path / "frozen", **QUIET)
    fresh = build_encoder(spec)  # a frozen random network is one network: what load_agent rebuilds
    trained = agent.encoder.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    assert not any(p.requires_grad for p in agent.encoder.parameters())
    assert "encoder_state" not in torch.load(tmp_path / "frozen" / "policy.pt", weights_only=True)
    loaded, _ = load_agent(tmp_path / "frozen" / "policy.pt", "reach")
    assert all(torch.equal(v, trained[k]) for k, v in loaded.encoder.state_dict().items())
    # the policy was trained on the cached features of exactly this encoder
    feats = np.load(cache_paths(demos, parse_spec(spec), 0)[0])
    frames = torch.from_numpy(np.load(demos / "episode_00000.npz")["pixels"][:4])
    with torch.no_grad():
        np.testing.assert_allclose(feats[:4], fresh(frames).numpy(), rtol=1e-5, atol=1e-5)
    spec = "scratch:vit_p_tiny@32"
    train_bc(cfg(demos, encoder=spec, scratch_steps=3), tmp_path / "scratch", **QUIET)
    saved = torch.load(tmp_path / "scratch" / "policy.pt", weights_only=True)["encoder_state"]
    start = build_encoder(spec, seed=0).state_dict()
    changed = [k for k in start if not torch.equal(start[k], saved[k])]
    assert len(changed) > len(start) // 2
    agent, _ = load_agent(tmp_path / "scratch" / "policy.pt")
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.equal(agent.encoder(frames), _scratch_encoder(spec, saved)(frames))


def _scratch_encoder(spec, state):
    enc = build_encoder(spec, seed=0)
    enc.load_state_dict(state)
    return enc.eval()


def test_a_damaged_or_stale_feature_cache_is_recomputed(demos):
    spec = parse_spec("random:vit_p_tiny@32")
    logs = []
    first = cached_features(demos, spec, seed=5, log=logs.append)
    npy, sidecar = cache_paths(demos, spec, 5)
    assert npy.is_file() and sidecar.is_file() and "computed" in logs[-1]
    assert np.array_equal(cached_features(demos, spec, seed=5, log=logs.append), first) and "cached in" in logs[-1]
    raw = bytearray(npy.read_bytes())
    raw[-8:] = b"\x00\x00\xc0\x7f" * 2  # NaNs in place of the last feature: the file still loads
    npy.write_bytes(bytes(raw))
    again = cached_features(demos, spec, seed=5, log=logs.append)
    assert "stale or damaged" in logs[-2] and np.array_equal(again, first)
    # changed since vislearn wrote it: not trusted, and (a file vislearn did not write) replaced only with overwrite
    assert "not cached" in logs[-1] and "--overwrite" in logs[-1] and npy.read_bytes() == bytes(raw)
    again = cached_features(demos, spec, seed=5, log=logs.append, overwrite=True)
    assert np.array_equal(again, first) and "computed, cached" in logs[-1]
    assert np.array_equal(np.load(npy), first)
    npy.write_bytes(b"not an npy file")
    assert np.array_equal(cached_features(demos, spec, seed=5, log=logs.append), first)
    other = cached_features(demos, spec, seed=6, log=logs.append)  # another random seed: another cache, other weights
    assert cache_paths(demos, spec, 6)[0] != npy and not np.array_equal(other, first)


def _bc_args(demos, out, *extra):
    return ["--demos", str(demos), "--encoder", "state", "--out", str(out), "--device", "cpu", "batch_size=8",
            "ckpt_every=1", "threads=1", *extra]


def test_a_killed_run_continues_to_the_same_weights(demos, tmp_path):
    extra = ("epochs=80", "warmup_epochs=5")
    assert main(_bc_args(demos, tmp_path / "whole", *extra)) == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "vislearn.control", "bc", *_bc_args(demos, cut, *extra)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (cut / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "policy.pt").exists(), "the run ended before it could be killed"
    killed_at = torch.load(cut / "last.pt", weights_only=True)["step"]
    assert main(_bc_args(demos, cut, *extra)) == 0
    a, b = weights(tmp_path / "whole" / "policy.pt"), weights(cut / "policy.pt")
    assert killed_at < torch.load(cut / "last.pt", weights_only=True)["step"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(80))


def test_torchrun_two_processes_train_as_one(demos, tmp_path):
    extra = ("epochs=3", "warmup_epochs=1", "batch_size=32")
    assert main(_bc_args(demos, tmp_path / "one", *extra)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
                        "-m", "vislearn.control.bc", *_bc_args(demos, tmp_path / "two", *extra)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = weights(tmp_path / "one" / "policy.pt"), weights(tmp_path / "two" / "policy.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    la = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert la == pytest.approx(lb, rel=1e-4)


def test_demonstrations_of_another_task_are_one_line(demos, tmp_path, capsys):
    assert main(["--demos", str(demos), "--encoder", "state", "--task", "push", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "demonstrations of task 'reach', not 'push'" in err
    assert not (tmp_path / "r").exists()
    assert main(["--demos", str(tmp_path), "--encoder", "state", "--out", str(tmp_path / "r")]) == 2
    assert "not a demonstrations folder" in capsys.readouterr().err
    assert main(["--demos", str(demos), "--encoder", "state", "--num-demos", "5", "--out", str(tmp_path / "r")]) == 2
    assert "holds 2 demonstrations, 5 asked for" in capsys.readouterr().err
    assert main(["--demos", str(demos), "--encoder", "vit:nope", "--out", str(tmp_path / "r")]) == 2
    assert "is not an encoder" in capsys.readouterr().err
