"""Humanoid-locomotion environments (`vislearn.control.humanoid.env.LocoEnvs`): the same seeds and actions give the
same rollout (observations, privileged states, rewards, episode ends), `state()` / `restore()` continue exactly, and
a user's MJCF with a floating base (a box-legged biped written here) runs through the same layer, rough terrain and
randomisation included. Real MuJoCo, no mocks."""
from __future__ import annotations

import numpy as np
import pytest

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.humanoid.env import EnvSettings, LocoEnvs
from vislearn.control.humanoid.randomization import PRIVILEGED_DYN, Randomization
from vislearn.control.humanoid.robots import get_robot

BIPED = """<mujoco model="box_biped">
  <option timestep="0.005"/>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="20 20 0.1" rgba="0.8 0.9 0.8 1"/>
    <body name="torso" pos="0 0 0.72">
      <freejoint name="root"/>
      <geom type="box" size="0.12 0.16 0.08" mass="6"/>
      <body name="left_thigh" pos="0 0.09 -0.08">
        <joint name="left_hip" type="hinge" axis="0 1 0" range="-60 60" damping="0.5"/>
        <geom type="box" size="0.03 0.03 0.14" pos="0 0 -0.14" mass="1"/>
        <body name="left_calf" pos="0 0 -0.28">
          <joint name="left_knee" type="hinge" axis="0 1 0" range="-90 0" damping="0.5"/>
          <geom type="box" size="0.03 0.03 0.14" pos="0 0 -0.14" mass="0.8"/>
          <body name="left_foot" pos="0 0 -0.31">
            <geom type="box" size="0.08 0.04 0.02" mass="0.3"/>
          </body>
        </body>
      </body>
      <body name="right_thigh" pos="0 -0.09 -0.08">
        <joint name="right_hip" type="hinge" axis="0 1 0" range="-60 60" damping="0.5"/>
        <geom type="box" size="0.03 0.03 0.14" pos="0 0 -0.14" mass="1"/>
        <body name="right_calf" pos="0 0 -0.28">
          <joint name="right_knee" type="hinge" axis="0 1 0" range="-90 0" damping="0.5"/>
          <geom type="box" size="0.03 0.03 0.14" pos="0 0 -0.14" mass="0.8"/>
          <body name="right_foot" pos="0 0 -0.31">
            <geom type="box" size="0.08 0.04 0.02" mass="0.3"/>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="left_hip" gear="40" ctrlrange="-1 1"/>
    <motor joint="left_knee" gear="40" ctrlrange="-1 1"/>
    <motor joint="right_hip" gear="40" ctrlrange="-1 1"/>
    <motor joint="right_knee" gear="40" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def seeds(i: int, k: int) -> int:
    return 500 + 100 * i + k


def rollout(envs: LocoEnvs, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs, priv, rew, ends = [envs.obs.copy()], [envs.priv.copy()], [], []
    for _ in range(steps):
        r, term, trunc, finished = envs.step(rng.uniform(-1, 1, (envs.n, envs.n_act)))
        obs.append(envs.obs.copy())
        priv.append(envs.priv.copy())
        rew.append(r)
        ends += finished
    return np.stack(obs), np.stack(priv), np.stack(rew), ends


def test_same_seeds_and_actions_give_the_same_rollout():
    a, b, c = (LocoEnvs(EnvSettings(), 2, Randomization(), s) for s in (seeds, seeds, lambda i, k: seeds(i, k) + 7))
    for e in (a, b, c):
        e.start()
    ra, rb, rc = rollout(a, 80), rollout(b, 80), rollout(c, 80)
    assert ra[3], "no episode ended: the rollout did not cross a reset"
    for x, y in zip(ra[:3], rb[:3]):
        np.testing.assert_array_equal(x, y)
    assert ra[3] == rb[3]
    assert not np.array_equal(ra[0], rc[0])  # other seeds: other episodes


def test_state_and_restore_continue_exactly():
    a = LocoEnvs(EnvSettings(), 2, Randomization(), seeds)
    a.start()
    rollout(a, 30, seed=1)
    st = a.state()
    later = rollout(a, 40, seed=2)
    b = LocoEnvs(EnvSettings(), 2, Randomization(), seeds)
    b.restore(st)
    again = rollout(b, 40, seed=2)
    for x, y in zip(later[:3], again[:3]):
        np.testing.assert_array_equal(x, y)
    assert later[3] == again[3]


@pytest.fixture
def biped(tmp_path):
    path = tmp_path / "box_biped.xml"
    path.write_text(BIPED)
    return path


def test_a_users_floating_base_mjcf_runs_through_the_same_layer(biped):
    robot = get_robot(str(biped))
    assert robot.name == "box_biped" and not robot.planar
    assert robot.min_height == pytest.approx(0.36)  # fallen: below half the base's starting height
    envs = LocoEnvs(EnvSettings(robot=str(biped)), 2, Randomization(terrain={"rough": 1.0}), seeds)
    assert envs.control_dt == pytest.approx(0.02)  # 50 Hz control, whatever the MJCF's physics step
    assert envs.n_joints == 4 and envs.n_act == 4
    assert envs.obs_dim == 6 + 2 * 4 + 1 + 4  # angular velocity, gravity, joints, command, last action
    assert envs.priv_dim == envs.obs_dim + 3 + 1 + 2 + PRIVILEGED_DYN  # velocity, height, two feet's contacts
    assert envs.models[0].nhfield == 1  # its floor plane became the rough ground
    envs.start()
    stock = envs.stock
    assert not np.array_equal(envs.models[0].actuator_gear[:, 0], stock.gear)  # randomised
    np.testing.assert_array_equal(envs.models[0].dof_damping[:6], 0.0)  # the free base is never damped
    # upright at the start: gravity straight down in the body frame (the clean reading; the policy's is noisy)
    np.testing.assert_allclose(envs.priv[:, 3:6], [[0.0, 0.0, -1.0]] * 2, atol=1e-6)
    assert [envs.models[0].body(b).name for b in envs.feet] == ["left_foot", "right_foot"]
    obs, priv, rew, ends = rollout(envs, 100)
    assert np.isfinite(obs).all() and np.isfinite(priv).all() and np.isfinite(rew).all()
    # the feet touch the ground during the rollout (contact flags of the privileged state)
    contacts = priv[:, :, envs.obs_dim + 4:envs.obs_dim + 6]
    assert contacts.max() == 1.0
    # random torques topple it: episodes end with falls and start again
    assert ends and any(e[4] for e in ends) and envs.episode.min() >= 1
    d = envs.datas[0]
    d.qpos[2] = 0.2  # base low: fallen
    assert envs.fallen(0)


def test_a_tiny_teacher_trains_on_the_users_robot(biped, tmp_path):
    from vislearn.control.humanoid import train

    cfg = train.load_config(None, ["role=teacher", f"robot={biped}", "steps=32", "num_envs=2", "num_steps=8",
                                   "epochs=1", "minibatches=2", "eval_episodes=0", "threads=1"])
    res = train.train(cfg, tmp_path / "run", log=lambda *a: None)
    assert res["robot"] == "box_biped" and res["updates"] == 2
    from vislearn.control.humanoid.evaluate import evaluate_file

    ev = evaluate_file(tmp_path / "run" / "policy.pt", 2, conditions=("train", "heavy"), num_envs=2)
    assert ev["heavy"]["episodes"] == 2 and 0.0 <= ev["heavy"]["success"] <= 1.0
