"""PPO (`vislearn control ppo`): a tiny state run writes its files and a policy `load_agent` reads and acts with; an
environment put back by seed + replayed actions is where it was; a run killed by SIGKILL and resumed ends with the
same weights as one never stopped; a frozen encoder is unchanged by PPO; a tiny pixel run at 32 px; torchrun with
2 CPU processes; bad input is one line, exit 2. Real MuJoCo / Meta-World / torch, tiny sizes."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control import ppo
from vislearn.control.actor_critic import ActorCritic
from vislearn.control.agent import load_agent
from vislearn.control.envs import SawyerTaskEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import call, one_line  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]


def tiny(**kw) -> ppo.PPOConfig:
    cfg = ppo.load_config(ppo.DEFAULT_CONFIG, ["steps=96", "num_envs=1", "num_steps=24", "epochs=2", "minibatches=2",
                                               "eval_episodes=0", "ckpt_every=1", "threads=1", "device=cpu"])
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def quiet(*a, **k):
    pass


def test_state_run_writes_its_files_and_the_policy_acts(tmp_path):
    res = ppo.train(tiny(eval_episodes=2, num_envs=2, steps=96), tmp_path / "run", log=quiet, progress=False)
    run = tmp_path / "run"
    for name in ppo.RUN_FILES:
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2] and rows[-1]["steps"] == 96
    assert all(np.isfinite(r["value_loss"]) and r["steps_per_s"] > 0 for r in rows)
    assert json.loads((run / "config.json").read_text())["num_steps"] == 24
    assert res["eval"]["episodes"] == 2 and 0.0 <= res["eval"]["success_rate"] <= 1.0
    agent, ckpt = load_agent(run / "policy.pt", "reach")
    assert ckpt["method"] == "ppo" and ckpt["encoder"] == "state"
    assert ckpt["extra"]["log_std"].shape == (4,) and any(k.endswith("weight") for k in ckpt["extra"]["critic"])
    env = SawyerTaskEnv("reach", pixels=False)
    obs, _ = env.reset(seed=3)
    a = agent({k: v[None] for k, v in obs.items()})
    assert a.shape == (1, 4) and np.all(np.abs(a) <= 1.0)
    env.close()


def test_restore_puts_each_environment_back(tmp_path):
    """Uneven replays (one environment mid-episode, the other just reset) give the observations a fresh env has."""
    cfg = tiny(num_envs=2)
    envs = ppo.Envs(cfg, pixels=False, rank=0)
    rng = np.random.default_rng(0)
    acts = [rng.uniform(-1, 1, (n, 4)).astype(np.float32) for n in (7, 0)]
    st = {"count": [3, 2], "ret": [0.0, 0.0], "actions": [torch.from_numpy(a) for a in acts]}
    envs.restore(st)
    for i, (a, count) in enumerate(zip(acts, st["count"])):
        env = SawyerTaskEnv("reach", pixels=False)
        obs, _ = env.reset(seed=envs.seed_of(i, count - 1))
        for x in a:
            obs, *_ = env.step(x)
        assert np.array_equal(obs["state"], envs.obs["state"][i]), i
        assert np.array_equal(obs["proprio"], envs.obs["proprio"][i]), i
        env.close()
    envs.close()
    assert len({envs.seed_of(i, k) for i in range(2) for k in range(3)}) == 6
    assert min(envs.seed_of(0, 0), envs.seed_of(1, 0)) >= ppo.PPO_SEEDS


KILLED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_ctl_ppo import tiny
from vislearn.control import ppo

def log(msg, *a, **k):
    if msg.startswith("update 2/"):  # logged after the checkpoint is written: die like a killed job
        os.kill(os.getpid(), signal.SIGKILL)

ppo.train(tiny(num_envs=2), {out!r}, log=log, progress=False)
"""


def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    killed = tmp_path / "killed"
    script = KILLED.format(tests=str(Path(__file__).parent), out=str(killed))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (killed / "last.pt").is_file() and not (killed / "policy.pt").exists()
    ppo.train(tiny(num_envs=2), killed, resume=True, log=quiet, progress=False)
    ppo.train(tiny(num_envs=2), tmp_path / "whole", log=quiet, progress=False)
    a = torch.load(killed / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert a["update"] == b["update"] == 2
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["value_loss"] for r in a["metrics"]] == [r["value_loss"] for r in b["metrics"]]


def test_frozen_encoder_is_unchanged_by_ppo():
    cfg = tiny(encoder="random:vit_p_tiny@32", size=32)
    info, spec, encoder = ppo._setup(cfg)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    feat = ppo.Featurizer(spec, encoder, torch.device("cpu"))
    torch.manual_seed(0)
    ac = ActorCritic(feat.dim, 8, 4)
    opt = torch.optim.Adam(ac.parameters(), lr=1e-2)
    envs = ppo.Envs(cfg, pixels=True, rank=0)
    envs.start()
    try:
        batch, _ = ppo.collect(ac, envs, feat, cfg)
    finally:
        envs.close()
    assert batch["features"].shape == (24, encoder.dim) and not batch["features"].requires_grad
    actor_before = ac.actor.image_proj.weight.detach().clone()
    ppo.ppo_update(ac, opt, batch, cfg, 0, 1, torch.Generator().manual_seed(0))
    assert not torch.equal(actor_before, ac.actor.image_proj.weight)  # the policy learned
    assert not encoder.training and all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    for k, v in encoder.state_dict().items():
        assert torch.equal(before[k], v), k


def test_pixel_run_at_32px_via_the_cli(tmp_path):
    from vislearn.control.ppo import main

    rc, _, err = call(main, "--task", "reach", "--encoder", "random:vit_p_tiny@32", "--out", tmp_path / "px",
                      "--steps", "48", "--num-envs", "1", "num_steps=24", "epochs=1", "minibatches=2", "size=32",
                      "eval_episodes=0", "threads=1", "--device", "cpu")
    assert rc == 0, err
    agent, ckpt = load_agent(tmp_path / "px" / "policy.pt", "reach")
    assert ckpt["render"]["size"] == 32 and agent.encoder is not None
    env = SawyerTaskEnv("reach", pixels=True, render=agent.render)
    obs, _ = env.reset(seed=1)
    assert agent({k: v[None] for k, v in obs.items()}).shape == (1, 4)
    env.close()


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_processes_on_cpu(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "vislearn.control.ppo",
                           "--out", str(tmp_path / "ddp"), "--steps", "96", "--num-envs", "1", "num_steps=24", "epochs=1",
                           "minibatches=2", "eval_episodes=0", "threads=1", "--device", "cpu"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [48, 96]  # 2 processes x 1 env x 24 steps per update
    ck = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert len(ck["ranks"]) == 2


@pytest.mark.parametrize("argv, words", [
    (["--task", "fly"], "'fly': must be one of reach"),
    (["--encoder", "resnet"], "is not an encoder"),
    (["--encoder", "scratch:vit_p_tiny"], "frozen"),
    (["--encoder", "ckpt:/no/such/encoder.pth"], "/no/such/encoder.pth"),
    (["no_such_key=1"], "unknown config key 'no_such_key'"),
])
def test_bad_input_is_one_line(tmp_path, argv, words):
    from vislearn.control.ppo import main

    rc, _, err = call(main, "--out", tmp_path / "o", "--steps", "24", *argv)
    assert rc == 2
    line = one_line(err)
    assert line.startswith("error:") and words in line, line
