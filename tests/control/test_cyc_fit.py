"""`fit` on real unpaired MuJoCo data: with identical domains (HalfCheetah both sides) the learned maps stay near
the identity and the transfer acts as direct transfer does; a fit killed (SIGKILL) after a checkpoint and continued
with --resume ends with exactly the weights of one never stopped (torch.equal on every tensor of maps.pt)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.cycles import data as datamod
from vislearn.control.cycles.collect import main as collect_main
from vislearn.control.cycles.correspondence import load_maps
from vislearn.control.cycles.domains import Domain, make_env
from vislearn.control.cycles.fit import main as fit_main
from vislearn.control.cycles.policy import Actor, rollout_returns, save_policy
from vislearn.control.cycles.policy import EVAL_SEED, policy_returns
from vislearn.control.cycles.transfer import transfer_returns

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import call  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]
IDENTITY = """name: identity
source: {task: HalfCheetah-v5}
target: {task: HalfCheetah-v5}
collect_steps: 3000
episode_steps: 500
forward_steps: 300
forward_hidden: [64, 64]
map_hidden: [64, 64]
disc_hidden: [64, 32]
rounds: 1
steps_per_phase: 150
batch_size: 128
"""
# the resume test: tiny networks, 2 x 400 map steps (a checkpoint at 500, then 300 steps to the end)
RESUME = ("forward_steps=50", "forward_hidden=[16]", "map_hidden=[16]", "disc_hidden=[16]", "batch_size=16",
          "rounds=1", "steps_per_phase=400")


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """A collected identity pair (HalfCheetah on both sides), not yet fitted: copy it before fitting."""
    root = tmp_path_factory.mktemp("cyc_identity")
    (root / "identity.yaml").write_text(IDENTITY)
    rc, out, err = call(collect_main, root / "identity.yaml", "--out", root / "run")
    assert rc == 0, err
    assert "source: 3000 transitions in 6 episodes" in out, out
    return root / "run"


def copy_run(collected: Path, dest: Path) -> Path:
    shutil.copytree(collected, dest, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    return dest


@pytest.fixture(scope="module")
def identity_fit(collected, tmp_path_factory):
    run = copy_run(collected, tmp_path_factory.mktemp("cyc_fit") / "run")
    rc, out, err = call(fit_main, "--run", run)
    assert rc == 0, err
    corr, meta = load_maps(run / "maps.pt")
    return run, corr, meta


def test_the_data_of_the_two_domains_is_unpaired(collected):
    src, tgt = datamod.load(collected / "data" / "source.npz"), datamod.load(collected / "data" / "target.npz")
    assert src["obs"].shape == tgt["obs"].shape == (3000, 17)
    assert not {r.tobytes() for r in src["obs"]} & {r.tobytes() for r in tgt["obs"]}  # no state in both
    assert not np.array_equal(src["act"], tgt["act"])  # other episodes, other actions
    assert int(src["seed"]) != int(tgt["seed"])


def test_identity_domains_learn_maps_near_the_identity(identity_fit):
    run, corr, meta = identity_fit
    assert meta["fit"]["map_steps"] == 300
    for side in ("source", "target"):  # the forward models learned something: better than predicting no change
        f = meta["fit"]["forward"][side]
        assert f["heldout_l1"] < 0.8 * f["no_change_l1"], f
    x = torch.as_tensor(datamod.load(run / "data" / "source.npz")["obs"])
    d = datamod.load(run / "data" / "target.npz")
    y, b = torch.as_tensor(d["obs"]), torch.as_tensor(d["act"])
    spread = x.std(0)
    with torch.no_grad():
        assert ((corr.F(x) - x).abs() / spread).mean() < 0.05
        assert ((corr.H(y) - y).abs() / spread).mean() < 0.05
        a = torch.as_tensor(datamod.load(run / "data" / "source.npz")["act"])
        assert (corr.G(x, a) - a).abs().mean() < 0.05  # actions in [-1, 1]
        assert (corr.G_inv(y, b) - b).abs().mean() < 0.05
        # they did train: the residuals moved off zero (a test of a fit that never ran would pass the above)
        assert (corr.F(x) - x).abs().max() > 0 and (corr.G(x, a) - a).abs().max() > 0


@pytest.fixture(scope="module")
def random_actor(tmp_path_factory):
    torch.manual_seed(0)
    actor = Actor(17, 6).eval()
    with torch.no_grad():
        for m in (*actor.body, actor.head):
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)  # actions that reach the limits now and then
    path = tmp_path_factory.mktemp("cyc_policy") / "policy.pt"
    save_policy(path, actor, Domain(), "", {})
    return actor, path


def test_identity_transfer_equals_direct_transfer(identity_fit, random_actor):
    run, corr, meta = identity_fit
    actor, _ = random_actor
    direct = corr.without_learning()
    target, xml = Domain(task="HalfCheetah-v5"), meta["xml"]["target"]
    obs = datamod.load(run / "data" / "target.npz")["obs"][::10]
    with torch.no_grad():
        through = np.stack([corr.target_action(actor, o).numpy() for o in obs])
        plain = np.stack([direct.target_action(actor, o).numpy() for o in obs])
        own = np.stack([actor.act(o) for o in obs])
    np.testing.assert_array_equal(plain, own)  # direct transfer between equal robots is the policy itself
    gap = np.abs(through - plain)
    assert gap.mean() < 0.03 and np.quantile(gap, 0.99) < 0.2, (gap.mean(), np.quantile(gap, 0.99))  # 0.005, 0.09
    assert np.abs(own).max() > 0.9  # the actions span the range
    ret_direct = transfer_returns(direct, actor, target, xml, 1)
    assert ret_direct == policy_returns(actor, target, xml, 1)  # exactly: the same actions, the same episode
    # along the episode direct transfer plays in the target, the maps choose nearly the same action at every state
    # (returns of whole episodes are no measure here: a random policy's small action differences grow chaotically
    # in HalfCheetah, measured -87 against -178 over 1000 steps)
    env = make_env(target, xml)
    visited = []
    try:
        rollout_returns(env, lambda o: visited.append(o) or direct.target_action(actor, o).numpy(), 1, EVAL_SEED)
    finally:
        env.close()
    with torch.no_grad():
        diff = np.stack([np.abs(corr.target_action(actor, o).numpy() - direct.target_action(actor, o).numpy())
                         for o in visited])
    assert len(visited) == 1000
    assert diff.mean() < 0.03 and np.quantile(diff, 0.99) < 0.2, (diff.mean(), np.quantile(diff, 0.99))  # measured 0.005, 0.09


def test_a_killed_fit_resumed_ends_with_the_weights_of_one_never_stopped(collected, tmp_path):
    a = copy_run(collected, tmp_path / "a")
    b = copy_run(collected, tmp_path / "b")
    rc, _, err = call(fit_main, "--run", a, *RESUME)
    assert rc == 0, err
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vislearn.control.cycles", "fit", "--run", str(b), *RESUME],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (b / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (b / "maps.pt").exists(), "the fit ended before the kill: nothing was resumed"
    step = torch.load(b / "last.pt", weights_only=False)["step"]
    assert step == 500, step
    rc, out, err = call(fit_main, "--run", b, "--resume", *RESUME)
    assert rc == 0, err
    assert f"resumed {b / 'last.pt'} at map step {step}" in out
    sa, sb = torch.load(a / "maps.pt", weights_only=False), torch.load(b / "maps.pt", weights_only=False)
    assert sa["state_dict"].keys() == sb["state_dict"].keys() and len(sa["state_dict"]) > 20
    differ = [k for k in sa["state_dict"] if not torch.equal(sa["state_dict"][k], sb["state_dict"][k])]
    assert not differ, differ
    assert sa["fit"]["map_steps"] == sb["fit"]["map_steps"] == 800
