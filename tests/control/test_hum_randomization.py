"""Humanoid-locomotion domain randomisation (`vislearn.control.humanoid.randomization`), checked by reading the
compiled model each environment steps (`envs.models[i]` after a reset) against gymnasium's own Walker2d-v5 MJCF:
every item of the paper's Table I changes what its config says and nothing else, a range [a, a] fixes an item,
`enabled: false` is the stock model exactly, and the held-out conditions lie outside the training ranges.
Real MuJoCo, no mocks."""
from __future__ import annotations

import copy
import math

import mujoco
import numpy as np
import pytest

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.humanoid.env import EnvSettings, LocoEnvs
from vislearn.control.humanoid.randomization import (HELD_OUT, NOISE_STD, Dynamics, Randomization, Stock,
                                                     apply_dynamics, damping_ratio, parse_randomization)
from vislearn.control.humanoid.robots import HFIELD_CELL, gymnasium_asset

STOCK = mujoco.MjModel.from_xml_path(str(gymnasium_asset("walker2d_v5.xml")))
BASE_DOFS = 3  # Walker2d's base: slide x, slide z, hinge pitch


def make(n: int = 2, control: str = "torque", seed0: int = 1000, **items) -> LocoEnvs:
    """Walker2d environments under `items` (the rest: the default training ranges), started."""
    envs = LocoEnvs(EnvSettings(control=control), n, parse_randomization(items, "test"),
                    lambda i, k: seed0 + 1000 * i + k)
    envs.start()
    return envs


def episodes(envs: LocoEnvs, count: int = 12, i: int = 0):
    """(model, dynamics) of environment i over `count` episodes of seeds 0.."""
    for seed in range(count):
        envs.reset(i, seed=seed)
        yield envs.models[i], envs.dyn[i]


def run(envs: LocoEnvs, steps: int, seed: int = 0, amp: float = 1.0) -> dict:
    """Step with seeded random actions in [-amp, amp]; the observations, privileged states and rewards of every step
    (the first row: after the reset)."""
    rng = np.random.default_rng(seed)
    obs, priv, rew = [envs.obs.copy()], [envs.priv.copy()], []
    for _ in range(steps):
        r, *_ = envs.step(rng.uniform(-amp, amp, (envs.n, envs.n_act)))
        obs.append(envs.obs.copy())
        priv.append(envs.priv.copy())
        rew.append(r)
    return {"obs": np.stack(obs), "priv": np.stack(priv), "reward": np.stack(rew)}


def test_strength_scales_each_actuator_gear():
    envs = make(strength=[0.85, 1.15])
    ratios = []
    for m, dyn in episodes(envs):
        ratio = m.actuator_gear[:, 0] / STOCK.actuator_gear[:, 0]
        np.testing.assert_allclose(ratio, dyn.strength, rtol=1e-12)
        np.testing.assert_array_equal(m.actuator_gear[:, 1:], STOCK.actuator_gear[:, 1:])
        ratios.append(ratio)
    ratios = np.concatenate(ratios)
    assert ratios.min() >= 0.85 and ratios.max() <= 1.15 and ratios.std() > 0.05
    # each environment's model is its own
    assert not np.array_equal(envs.models[0].actuator_gear, envs.models[1].actuator_gear)


def test_damping_scales_the_robots_joints_log_uniformly_never_the_base():
    envs = make(damping=[0.3, 4.0])
    factors = []
    for m, dyn in episodes(envs, 60):
        np.testing.assert_array_equal(m.dof_damping[:BASE_DOFS], STOCK.dof_damping[:BASE_DOFS])  # 0: not joints
        f = m.dof_damping[BASE_DOFS:] / STOCK.dof_damping[BASE_DOFS:]
        np.testing.assert_allclose(f, dyn.damping[BASE_DOFS:], rtol=1e-12)
        factors.append(f)
    f = np.concatenate(factors)
    assert f.min() >= 0.3 - 1e-12 and f.max() <= 4.0 + 1e-12
    # log-uniform: log f is uniform on [log 0.3, log 4] (mean 0.092, half of the draws below sqrt(0.3 * 4) = 1.095);
    # uniform factors would put the mean of log f near 0.6 and only 21% below 1.095
    assert abs(np.log(f).mean() - 0.5 * math.log(0.3 * 4.0)) < 0.12
    assert 0.4 < np.mean(f < math.sqrt(0.3 * 4.0)) < 0.6


def test_a_joint_without_stock_damping_gets_some():
    """A zero stock damping counts as 0.1 N m s/rad before the factor, so the item is never a no-op (Walker2d's joints
    all have 0.1: the check zeroes one)."""
    m = copy.copy(STOCK)
    m.dof_damping[BASE_DOFS] = 0.0
    stock = Stock.of(m, planar=True)
    apply_dynamics(m, stock, Dynamics(damping=np.full(m.nv, 2.0)), planar=True)
    assert m.dof_damping[BASE_DOFS] == pytest.approx(0.2)
    np.testing.assert_allclose(m.dof_damping[BASE_DOFS + 1:], 2.0 * STOCK.dof_damping[BASE_DOFS + 1:], rtol=1e-12)
    assert not m.dof_damping[:BASE_DOFS].any()
    apply_dynamics(m, stock, Dynamics(), planar=True)  # the nominal draw: the model's own values again
    assert m.dof_damping[BASE_DOFS] == 0.0


def test_mass_scales_each_bodys_mass_and_inertia():
    envs = make(mass=[0.5, 1.5])
    scales = []
    for m, dyn in episodes(envs):
        assert m.body_mass[0] == 0.0  # the world
        s = m.body_mass[1:] / STOCK.body_mass[1:]
        np.testing.assert_allclose(s, dyn.mass[1:], rtol=1e-12)
        np.testing.assert_allclose(m.body_inertia[1:], STOCK.body_inertia[1:] * s[:, None], rtol=1e-12)
        scales.append(s)
    s = np.concatenate(scales)
    assert s.min() >= 0.5 and s.max() <= 1.5 and s.std() > 0.15


def test_friction_sets_every_geoms_sliding_friction():
    envs = make(friction=[0.3, 2.0])
    seen = []
    for m, dyn in episodes(envs):
        np.testing.assert_array_equal(m.geom_friction[:, 0], np.full(m.ngeom, dyn.friction))
        np.testing.assert_array_equal(m.geom_friction[:, 1:], STOCK.geom_friction[:, 1:])  # torsional, rolling
        seen.append(dyn.friction)
    assert min(seen) >= 0.3 and max(seen) <= 2.0 and np.std(seen) > 0.2


def test_restitution_sets_the_contact_damping_ratio():
    envs = make(restitution=[0.0, 0.4])
    for m, dyn in episodes(envs):
        assert 0.0 <= dyn.restitution <= 0.4
        np.testing.assert_array_equal(m.geom_solref[:, 1], np.full(m.ngeom, damping_ratio(dyn.restitution)))
        np.testing.assert_array_equal(m.geom_solref[:, 0], STOCK.geom_solref[:, 0])  # time constant kept
    # a mass on a spring with damping ratio z leaves contact with coefficient of restitution exp(-z pi / sqrt(1-z^2))
    for e in (0.05, 0.2, 0.4, 0.8):
        z = damping_ratio(e)
        assert math.exp(-z * math.pi / math.sqrt(1 - z * z)) == pytest.approx(e, rel=1e-9)
    assert damping_ratio(0.0) == 1.0  # no bounce: critically damped, MuJoCo's default


def test_slope_tilts_gravity_by_the_grade_and_keeps_its_magnitude():
    g = np.linalg.norm(STOCK.opt.gravity)
    envs = make(terrain={"slope": 1.0}, slope=[0.1, 0.1])
    for m, dyn in episodes(envs, 3):
        assert dyn.terrain == "slope" and dyn.slope == 0.1
        assert np.linalg.norm(m.opt.gravity) == pytest.approx(g, rel=1e-12)
        assert m.opt.gravity[1] == 0.0
        # uphill along +x: gravity leans back, against the direction of travel
        assert math.atan2(-m.opt.gravity[0], -m.opt.gravity[2]) == pytest.approx(math.atan(0.1), rel=1e-12)
    envs = make(terrain={"slope": 1.0}, slope=[-0.1, 0.1])
    grades = [dyn.slope for m, dyn in episodes(envs)]
    assert min(grades) < 0 < max(grades) and all(-0.1 <= s <= 0.1 for s in grades)
    m = envs.models[0]
    assert math.atan2(-m.opt.gravity[0], -m.opt.gravity[2]) == pytest.approx(math.atan(envs.dyn[0].slope))
    envs = make(terrain={"flat": 1.0}, slope=[0.1, 0.1])  # a flat episode: gravity straight down
    np.testing.assert_allclose(envs.models[0].opt.gravity, STOCK.opt.gravity, atol=1e-15)


def test_rough_terrain_is_a_height_field_that_flat_episodes_zero():
    envs = make(terrain={"flat": 1.0, "rough": 1.0}, rough_height=0.05)
    m = envs.models[0]
    assert m.nhfield == 1 and m.geom_type[m.geom("floor").id] == mujoco.mjtGeom.mjGEOM_HFIELD
    kinds = {}
    for m, dyn in episodes(envs, 10):
        h = m.hfield_data.reshape(m.hfield_nrow[0], m.hfield_ncol[0])
        if dyn.terrain == "rough":
            assert 0.5 < h.max() <= 1.0 and h.min() == 0.0 and h.std() > 0.05  # in [0, 1], scaled by MuJoCo
            assert m.hfield_size[0, 2] == pytest.approx(0.05)  # bumps of rough_height metres
            assert not h[:, : int(5.0 / HFIELD_CELL)].any()  # the start is flat
            kinds.setdefault("rough", []).append(h.copy())
        else:
            assert dyn.terrain == "flat" and not h.any()
            kinds.setdefault("flat", []).append(h)
    assert len(kinds.get("rough", [])) >= 2 and kinds.get("flat")  # both drawn
    assert not np.array_equal(kinds["rough"][0], kinds["rough"][1])  # each episode its own ground
    assert make(terrain={"flat": 1.0, "slope": 1.0}).models[0].nhfield == 0  # no rough episode: a plane


def test_payload_adds_mass_to_the_base_only():
    envs = make(payload=[3.0, 3.0], mass=[1.0, 1.0])
    for m, dyn in episodes(envs, 3):
        assert dyn.payload == 3.0
        assert m.body_mass[1] == pytest.approx(STOCK.body_mass[1] + 3.0, rel=1e-12)
        np.testing.assert_allclose(m.body_inertia[1], STOCK.body_inertia[1] * (1 + 3.0 / STOCK.body_mass[1]))
        np.testing.assert_array_equal(m.body_mass[2:], STOCK.body_mass[2:])


def test_latency_shows_the_sensor_reading_latency_steps_old():
    """Same seeds and actions with and without latency: the physics is the same, the delayed run observes what the
    other observed `latency_steps` control steps before (the start's reading until then), the rest is current."""
    common = dict(noise=0.0, motor_offset=[0.0, 0.0])
    slow = make(1, latency=[0.1, 0.1], **common)
    now = make(1, latency=[0.0, 0.0], **common)
    k = slow.dyn[0].latency_steps
    assert k == round(0.1 / slow.control_dt) and k >= 2 and now.dyn[0].latency_steps == 0
    steps = 20
    a, b = run(slow, steps, amp=0.1), run(now, steps, amp=0.1)
    assert slow.t[0] == steps  # no episode ended in between (one episode throughout)
    S = slow.sensor_dim
    np.testing.assert_array_equal(a["priv"][..., :S], b["priv"][..., :S])  # the same physics
    for t in range(steps + 1):
        np.testing.assert_array_equal(a["obs"][t, :, :S], b["obs"][max(0, t - k), :, :S], err_msg=f"step {t}")
        np.testing.assert_array_equal(a["obs"][t, :, S:], b["obs"][t, :, S:])  # command, last action: current
    assert not np.array_equal(a["obs"][steps, :, :S], b["obs"][steps, :, :S])
    np.testing.assert_array_equal(slow.obs[0, :S], slow.ring[0, -1 - k].astype(np.float32))


def test_motor_offset_adds_to_the_observed_joint_angles():
    envs = make(2, noise=0.0, latency=[0.0, 0.0], motor_offset=[0.03, 0.03])
    run(envs, 5)
    nj, imu = envs.n_joints, envs.imu_dim
    signs = []
    for i in range(envs.n):
        d, off = envs.datas[i], envs.dyn[i].motor_offset
        np.testing.assert_allclose(np.abs(off), 0.03, rtol=1e-12)
        true = d.qpos[envs.qs] - envs.stand
        np.testing.assert_allclose(envs.obs[i, imu:imu + nj], true + off, atol=1e-6)
        np.testing.assert_allclose(envs.obs[i, imu + nj:imu + 2 * nj], d.qvel[envs.vs], atol=1e-5)  # velocities
        np.testing.assert_allclose(envs.priv[i, imu:imu + nj], true + off, atol=1e-6)  # what the encoder reads
        signs += list(np.sign(off))
    assert -1 in signs and 1 in signs


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_noise_has_the_configured_std_per_channel(scale):
    common = dict(latency=[0.0, 0.0])
    noisy, clean = make(4, noise=scale, **common), make(4, noise=0.0, **common)
    a, b = run(noisy, 40), run(clean, 40)
    np.testing.assert_array_equal(a["priv"], b["priv"])  # noise touches the observation only
    S, nj = noisy.sensor_dim, noisy.n_joints
    diff = (a["obs"] - b["obs"]).reshape(-1, noisy.obs_dim).astype(np.float64)
    assert not diff[:, S:].any()  # command and last action are exact
    groups = {"ang_vel": [0], "gravity": [1, 2], "joint_pos": list(range(3, 3 + nj)),
              "joint_vel": list(range(3 + nj, 3 + 2 * nj))}
    for name, cols in groups.items():
        std = diff[:, cols].std()
        assert std == pytest.approx(scale * NOISE_STD[name], rel=0.2), name
        assert abs(diff[:, cols].mean()) < 0.2 * scale * NOISE_STD[name], name


def test_pd_gains_scale_the_pd_controllers_output():
    high = make(1, control="pd", pd_gains=[1.1, 1.1])
    nominal = make(1, control="pd", pd_gains=[1.0, 1.0])
    assert np.all(high.dyn[0].kp == 1.1) and np.all(high.dyn[0].kd == 1.1)
    a = np.full(high.n_act, 0.1)  # small: the controller stays inside the control range
    c_high, c_nom = high._ctrl(0, a), nominal._ctrl(0, a)
    assert np.abs(c_nom).max() < 1.0 and np.abs(c_nom).min() > 0.0
    np.testing.assert_allclose(c_high, 1.1 * c_nom, rtol=1e-12)
    high.step(a[None]), nominal.step(a[None])
    assert not np.allclose(high.datas[0].ctrl, nominal.datas[0].ctrl)


def test_a_range_of_one_value_fixes_the_item():
    envs = make(strength=[1.2, 1.2], friction=[0.7, 0.7], mass=[0.8, 0.8], damping=[2.0, 2.0],
                restitution=[0.3, 0.3])
    for i in range(envs.n):
        for m, _ in episodes(envs, 3, i):
            np.testing.assert_allclose(m.actuator_gear[:, 0], 1.2 * STOCK.actuator_gear[:, 0], rtol=1e-12)
            assert np.all(m.geom_friction[:, 0] == 0.7)
            np.testing.assert_allclose(m.body_mass, 0.8 * STOCK.body_mass, rtol=1e-12)
            np.testing.assert_allclose(m.dof_damping[BASE_DOFS:], 2.0 * STOCK.dof_damping[BASE_DOFS:], rtol=1e-12)
            assert np.all(m.geom_solref[:, 1] == damping_ratio(0.3))


def test_disabled_randomization_is_the_stock_model_exactly():
    envs = make(2, enabled=False)
    run(envs, 60)  # episodes end and start again in between
    assert envs.episode.max() > 1
    arrays = [n for n in dir(STOCK) if not n.startswith("_") and isinstance(getattr(STOCK, n, None), np.ndarray)]
    assert len(arrays) > 100
    for m in envs.models:
        for name in arrays:
            np.testing.assert_array_equal(getattr(m, name), getattr(STOCK, name), err_msg=name)
        np.testing.assert_array_equal(m.opt.gravity, STOCK.opt.gravity)
    for i in range(envs.n):
        assert envs.dyn[i] == Dynamics()  # nothing drawn: no latency, offset or noise either
        # the observation is the clean, current reading
        np.testing.assert_array_equal(envs.obs[i, :envs.sensor_dim], envs.ring[i, -1].astype(np.float32))


def test_held_out_conditions_lie_outside_the_training_ranges():
    train = Randomization()
    assert HELD_OUT["slippery"]["friction"] < min(train.friction)
    assert HELD_OUT["weak"]["strength"] < min(train.strength)
    # 60% of the body's mass on the base: more than any training payload, and more than the link masses can add
    assert HELD_OUT["heavy"]["payload_fraction"] > max(train.payload) and \
        HELD_OUT["heavy"]["payload_fraction"] > max(train.mass) - 1.0
    total = float(STOCK.body_mass.sum())
    for condition in HELD_OUT:
        envs = LocoEnvs(EnvSettings(), 1, Randomization(), lambda i, k: 7 + k)
        envs.condition = [condition]
        envs.start()
        m, dyn = envs.models[0], envs.dyn[0]
        if condition == "slippery":
            assert np.all(m.geom_friction[:, 0] == 0.15) and 0.15 < min(train.friction)
        elif condition == "weak":
            np.testing.assert_allclose(m.actuator_gear[:, 0], 0.7 * STOCK.actuator_gear[:, 0], rtol=1e-12)
        else:
            extra = m.body_mass[1] - STOCK.body_mass[1] * dyn.mass[1]
            assert extra == pytest.approx(0.6 * total, rel=1e-9)
            np.testing.assert_allclose(m.body_mass[2:], STOCK.body_mass[2:] * dyn.mass[2:], rtol=1e-12)
