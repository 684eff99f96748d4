"""The dynamics-cycles commands a user types, through their real `main`: bad input is one line (`error: ...`,
exit 2) naming what is wrong; the exported policy acts as SB3's PPO does; and one tiny pair (hopper_mass) goes
collect -> fit -> transfer (with a video that decodes) -> evaluate (a table with maps, direct, oracle, random)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.cycles.collect import main as collect_main
from vislearn.control.cycles.domains import Domain, stock_xml
from vislearn.control.cycles.evaluate import main as evaluate_main
from vislearn.control.cycles.fit import main as fit_main
from vislearn.control.cycles.policy import Actor, load_policy, save_policy
from vislearn.control.cycles.train_policy import main as policy_main
from vislearn.control.cycles.transfer import main as transfer_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import call, one_line  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
MALFORMED = '<mujoco><worldbody><body name="b"><geom type="box" size="0.1 0.1 0.1"></worldbody></mujoco>'
NOT_COMPILING = '<mujoco><worldbody><body name="b"><joint type="hinge"/><geom type="sphere" size="0.1"/>' \
                '<geom type="box"/></body></worldbody></mujoco>'  # a box without a size does not compile
TINY = ("collect_steps=1000", "heldout_steps=0", "forward_steps=30", "forward_hidden=[32,32]", "map_hidden=[32,32]",
        "disc_hidden=[32]", "batch_size=32", "rounds=1", "steps_per_phase=20")


def error_line(rc, err) -> str:
    assert rc == 2, err
    line = one_line(err)
    assert line.startswith("error:"), line
    return line


@pytest.fixture(scope="module")
def ok_xml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cyc_xml") / "ok.xml"
    shutil.copyfile(stock_xml("HalfCheetah-v5"), path)
    return path


@pytest.mark.parametrize("text, words", [
    (MALFORMED, "broken.xml: not an MJCF file"),
    (NOT_COMPILING, "broken.xml: the MJCF does not compile"),
], ids=["malformed", "does-not-compile"])
@pytest.mark.parametrize("side", ["source", "target"])
def test_an_mjcf_that_does_not_compile_is_one_line(tmp_path, ok_xml, text, words, side):
    (tmp_path / "broken.xml").write_text(text)
    xmls = {"source": ok_xml, "target": ok_xml, side: tmp_path / "broken.xml"}
    line = error_line(*call(collect_main, "--source-xml", xmls["source"], "--target-xml", xmls["target"],
                            "--out", tmp_path / "run")[::2])
    assert words in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("yaml, words", [
    ("source: {task: HalfCheetah-v5}\ntarget:\n  task: HalfCheetah-v5\n  copy_body: [{body: bthigh, parent: torso, "
     "pos: [0, 0, 0], prefix: m}]\n",
     "the source has 6 actions and the target 9: a pair whose action sizes differ needs action_assignment"),
    ("source: {task: HalfCheetah-v5}\ntarget: {task: HalfCheetah-v5, armatur: 2.0}\n",
     "target: unknown key 'armatur'; valid keys: armature, copy_body,"),
    ("source: {task: HalfCheetah-v5, mass: {tail: 2.0}}\ntarget: {task: HalfCheetah-v5}\n",
     "mass: no body named 'tail' in the model"),
    ("source: {task: HalfCheetah-v5}\ntarget: {task: HalfCheetah-v5, observation: depth}\n",
     "target: observation: 'depth' is not state or image"),
], ids=["action-sizes-differ", "unknown-domain-key", "unknown-body", "unknown-observation"])
def test_a_pair_that_cannot_work_is_one_line(tmp_path, yaml, words):
    (tmp_path / "pair.yaml").write_text(yaml)
    line = error_line(*call(collect_main, tmp_path / "pair.yaml", "--out", tmp_path / "run")[::2])
    assert words in line, line
    assert not (tmp_path / "run").exists()


def test_an_unknown_pair_name_is_one_line_listing_the_named_pairs(tmp_path):
    line = error_line(*call(collect_main, "cheetah_armature9", "--out", tmp_path / "run")[::2])
    assert "pair 'cheetah_armature9': no such named pair; choose one of cheetah_3leg, cheetah_armature2" in line
    assert "defaults" not in line


def test_fit_on_a_folder_without_a_config_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    line = error_line(*call(fit_main, "--run", tmp_path / "run")[::2])
    assert f"{tmp_path / 'run'}: no config.json; collect the data first" in line
    assert not (tmp_path / "run" / "last.pt").exists()


# ----------------------------------------------------------------------------- one tiny pair, end to end
@pytest.fixture(scope="module")
def source_policy(tmp_path_factory) -> Path:
    """A PPO source policy of hopper_mass made by the real command (a CPU-second of training: the tests are about
    the plumbing, not the policy)."""
    out = tmp_path_factory.mktemp("cyc_policy") / "source"
    rc, stdout, err = call(policy_main, "hopper_mass", "--side", "source", "--out", out, "--minutes", "0.005")
    assert rc == 0, err
    assert "hopper_mass source: return" in stdout
    return out


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cyc_e2e") / "run"
    rc, out, err = call(collect_main, "hopper_mass", "--out", run, *TINY)
    assert rc == 0, err
    rc, out, err = call(fit_main, "--run", run)
    assert rc == 0, err
    assert "fit 40 map steps" in out
    return run


def test_the_exported_actor_acts_as_sb3s_ppo(source_policy):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from vislearn.control.cycles.domains import make_env

    actor, meta = load_policy(source_policy / "policy.pt")
    model = PPO.load(source_policy / "last.zip", device="cpu")
    venv = VecNormalize.load(str(source_policy / "vecnormalize.pkl"),
                             DummyVecEnv([lambda: make_env(Domain(task="Hopper-v5"))]))
    rng = np.random.default_rng(0)
    mean, std = venv.obs_rms.mean, np.sqrt(venv.obs_rms.var)
    obs = (mean + std * rng.normal(0, 3, size=(256, len(mean)))).astype(np.float32)  # beyond the clip of 10 too
    want, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    with torch.no_grad():
        got = actor(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert got.std(0).min() > 1e-3  # actions that depend on the observation
    assert np.abs(venv.obs_rms.mean).max() > 0  # statistics that were learned, not the identity
    assert meta["obs_dim"] == 11 and meta["act_dim"] == 3
    venv.close()


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_transfer_with_a_policy_of_the_wrong_size_is_one_line(fitted, tmp_path):
    save_policy(tmp_path / "cheetah.pt", Actor(17, 6), Domain(), "", {})
    line = error_line(*call(transfer_main, "--run", fitted, "--policy", tmp_path / "cheetah.pt", "--episodes", 1)[::2])
    assert "cheetah.pt: a policy of 17 observations and 6 actions; the pair's source has 11 and 3" in line


def test_collect_fit_transfer_evaluate(fitted, source_policy, tmp_path):
    policy = source_policy / "policy.pt"
    rc, out, err = call(transfer_main, "--run", fitted, "--policy", policy, "--episodes", 2, "--video",
                        tmp_path / "t.mp4", "--out", tmp_path / "t.json")
    assert rc == 0, err
    maps = json.loads((tmp_path / "t.json").read_text())
    assert len(maps["returns"]) == 2 and maps["direct"] is False
    assert maps["mean"] == pytest.approx(np.mean(maps["returns"]))
    frames = decode(tmp_path / "t.mp4")
    assert frames.shape[1:] == (240, 320, 3) and len(frames) >= 3
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # the robot moves in the video
    rc, out, err = call(transfer_main, "--run", fitted, "--policy", policy, "--episodes", 2, "--direct",
                        "--out", tmp_path / "d.json")
    assert rc == 0, err
    direct = json.loads((tmp_path / "d.json").read_text())
    # an oracle of the target's sizes (random weights: the table's plumbing is what is tested)
    torch.manual_seed(0)
    save_policy(tmp_path / "oracle.pt", Actor(11, 3), Domain(task="Hopper-v5"), "", {})
    rc, out, err = call(evaluate_main, "--runs", fitted, "--policy", policy, "--oracle", tmp_path / "oracle.pt",
                        "--episodes", 2, "--out", tmp_path / "eval")
    assert rc == 0, err
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["pair"] == "hopper_mass" and res["episodes"] == 2 and res["seeds"] == 1
    assert set(res["rows"]) == {"maps", "direct", "oracle", "random"}
    # the same evaluation episodes (seeds 10000..) as transfer's: the same numbers
    assert res["rows"]["maps"]["values"] == [pytest.approx(maps["mean"], rel=1e-12)]
    assert res["rows"]["direct"]["values"] == pytest.approx(direct["returns"], rel=1e-12)
    for name in ("maps", "direct"):
        r = res["rows"][name]
        assert r["of_oracle"] == pytest.approx(r["mean"] / res["rows"]["oracle"]["mean"])
    assert len(res["rows"]["random"]["values"]) == 2
    for name in ("results.md", "index.html", "returns.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 100, name
    assert "maps" in (tmp_path / "eval" / "results.md").read_text()
    assert decode(tmp_path / "eval" / "transfer.mp4").shape[1:] == (240, 320, 3)


# ----------------------------------------------------------------------------- what --resume may and may not replace
@pytest.mark.parametrize("name", ["source.xml", "config.json"])
def test_collect_resume_never_replaces_a_file_vislearn_did_not_write(fitted, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(fitted, run, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    (run / name).write_text("the user's own")
    line = error_line(*call(collect_main, "hopper_mass", "--out", run, "--resume", *TINY)[::2])
    assert f"{run / name}: exists and was not written by vislearn" in line
    assert (run / name).read_text() == "the user's own"


def test_fit_resume_never_replaces_a_file_vislearn_did_not_write(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted, run, ignore=shutil.ignore_patterns("*.lock", ".lock*", "last.pt", "maps.pt", "fit*"))
    (run / "fit.json").write_text("the user's own")
    line = error_line(*call(fit_main, "--run", run, "--resume")[::2])
    assert f"{run / 'fit.json'}: exists and was not written by vislearn" in line
    assert (run / "fit.json").read_text() == "the user's own" and not (run / "last.pt").exists()


def test_fit_refuses_a_bad_policy_and_data_settings_before_the_work(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted, run, ignore=shutil.ignore_patterns("*.lock", ".lock*", "last.pt", "maps.pt", "fit*"))
    save_policy(tmp_path / "cheetah.pt", Actor(17, 6), Domain(), "", {})
    line = error_line(*call(fit_main, "--run", run, "--policy", tmp_path / "cheetah.pt", "eval_every=10")[::2])
    assert "cheetah.pt: a policy of 17 observations and 6 actions; the pair's source has 11 and 3" in line
    line = error_line(*call(fit_main, "--run", run, "collect_steps=5000")[::2])
    assert "collect_steps: set when the run's data was collected" in line
    assert not (run / "last.pt").exists() and not (run / "fit_metrics.jsonl").exists()


def test_train_policy_resume_never_replaces_a_file_vislearn_did_not_write(source_policy, tmp_path):
    out = tmp_path / "source"
    shutil.copytree(source_policy, out, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    (out / "curve.png").write_text("the user's own")
    line = error_line(*call(policy_main, "hopper_mass", "--side", "source", "--out", out, "--resume")[::2])
    assert f"{out / 'curve.png'}: exists and was not written by vislearn" in line
    assert (out / "curve.png").read_text() == "the user's own"
