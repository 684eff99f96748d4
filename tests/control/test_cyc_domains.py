"""The dynamics-cycles domains read back from the COMPILED models (`mujoco.MjModel`), never from the XML text: every
named pair's variant differs from gymnasium's stock model exactly where its config says (armature x K, a body's
mass and inertia x K, a copied leg with the original's joint and motor settings), and the pairs' fixed state and
action assignments connect the same physical joints (names derived from qpos/qvel addresses)."""
from __future__ import annotations

import numpy as np
import pytest

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.cycles.domains import Domain, compile_xml, make_env, stock_xml, variant_xml
from vislearn.control.cycles.pairs import CONFIGS, load_pair

NAMED = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem != "defaults")
# every field that an edit could touch by mistake
FIELDS = ("body_mass", "body_inertia", "body_pos", "dof_damping", "dof_armature", "dof_frictionloss",
          "jnt_stiffness", "jnt_range", "geom_size", "geom_friction", "actuator_gear", "actuator_ctrlrange")


def stock_model(task: str):
    import mujoco

    return mujoco.MjModel.from_xml_path(str(stock_xml(task)))


def variant_model(domain: Domain):
    return compile_xml(variant_xml(domain), "test")


def name(model, kind, i: int) -> str:
    import mujoco

    return mujoco.mj_id2name(model, kind, i)


def field(model, f: str) -> np.ndarray:
    return np.array(getattr(model, f))


def test_every_named_pair_is_checked():
    assert len(SIDES) == 2 * len(NAMED) - 2  # the two copy_body targets are checked apart
    assert {"cheetah_3leg", "cheetah_armature2", "cheetah_armature3", "cheetah_image", "hopper_mass",
            "swimmer_4part"} <= set(NAMED)


# every side of every named pair, except copied legs (their own test below: the model grows)
SIDES = [(p, s) for p in NAMED for s in ("source", "target") if not load_pair(p)[0].domain(s).copy_body]


@pytest.mark.parametrize("pair, side", SIDES)
def test_a_variant_differs_from_the_stock_model_only_where_its_config_says(pair, side):
    import mujoco

    cfg, _ = load_pair(pair)
    d = cfg.domain(side)
    stock, var = stock_model(d.task), variant_model(d)
    assert var.opt.timestep == stock.opt.timestep
    assert (var.nq, var.nv, var.nu, var.nbody, var.ngeom) == (stock.nq, stock.nv, stock.nu, stock.nbody, stock.ngeom)
    expect = {f: field(stock, f) for f in FIELDS}
    if d.armature is not None:
        expect["dof_armature"] = field(stock, "dof_armature") * d.armature
    for body, k in d.mass.items():
        b = mujoco.mj_name2id(stock, mujoco.mjtObj.mjOBJ_BODY, body)
        assert b > 0, body
        expect["body_mass"][b] *= k
        expect["body_inertia"][b] *= k
    for f in FIELDS:
        np.testing.assert_allclose(field(var, f), expect[f], rtol=1e-9, atol=0, err_msg=f"{pair} {side}: {f}")
    if side == "source" or d.observation == "image":
        assert d.armature is None and not d.mass  # nothing edited: every field above equals the stock model's


def test_the_named_physics_edits_have_their_documented_values():
    import mujoco

    for pair, k in (("cheetah_armature2", 2.0), ("cheetah_armature3", 3.0)):
        var = variant_model(load_pair(pair)[0].domain("target"))
        arm = field(var, "dof_armature")
        np.testing.assert_allclose(arm[:3], 0.0)  # the root's slides and hinge keep armature 0
        np.testing.assert_allclose(arm[3:], 0.1 * k, rtol=1e-12)  # every leg hinge: 0.1 -> 0.1 k
    d = load_pair("hopper_mass")[0].domain("target")
    stock, var = stock_model("Hopper-v5"), variant_model(d)
    torso = mujoco.mj_name2id(stock, mujoco.mjtObj.mjOBJ_BODY, "torso")
    assert var.body_mass[torso] == pytest.approx(2 * stock.body_mass[torso], rel=1e-9)
    assert stock.body_mass[torso] == pytest.approx(np.pi * 0.05**2 * (0.4 + 4 / 3 * 0.05) * 1000, rel=1e-6)  # capsule r 0.05, 0.4 m, density 1000
    np.testing.assert_allclose(var.body_inertia[torso], 2 * stock.body_inertia[torso], rtol=1e-9)
    others = [b for b in range(stock.nbody) if b != torso]
    np.testing.assert_allclose(var.body_mass[others], stock.body_mass[others], rtol=1e-12)
    np.testing.assert_allclose(var.dof_armature[3:], 0.5, rtol=1e-12)  # armature 1 -> 0.5 on the 3 hinges


def subtree_joints(model, body: int) -> list[int]:
    out = []
    for j in range(model.njnt):
        b = model.jnt_bodyid[j]
        while b not in (0, body):
            b = model.body_parentid[b]
        if b == body:
            out.append(j)
    return out


def subtree_bodies(model, body: int) -> list[int]:
    out = []
    for b in range(model.nbody):
        c = b
        while c not in (0, body):
            c = model.body_parentid[c]
        if c == body:
            out.append(b)
    return out


@pytest.mark.parametrize("pair", ["cheetah_3leg", "swimmer_4part"])
def test_a_copied_leg_has_the_originals_settings_and_leaves_the_robot_unchanged(pair):
    import mujoco

    J, B = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_BODY
    d = load_pair(pair)[0].domain("target")
    (spec,) = d.copy_body
    stock, var = stock_model(d.task), variant_model(d)
    orig_body = mujoco.mj_name2id(stock, B, spec["body"])
    joints = subtree_joints(stock, orig_body)
    bodies = subtree_bodies(stock, orig_body)
    n = len(joints)
    assert n == {"cheetah_3leg": 3, "swimmer_4part": 1}[pair]
    assert (var.nq, var.nv, var.nu, var.nbody) == (stock.nq + n, stock.nv + n, stock.nu + n, stock.nbody + len(bodies))
    # the copy is a child of the asked parent, at the asked position
    copy_root = mujoco.mj_name2id(var, B, spec["prefix"] + spec["body"])
    assert copy_root > 0 and name(var, B, var.body_parentid[copy_root]) == spec["parent"]
    np.testing.assert_allclose(var.body_pos[copy_root], np.resize(np.asarray(spec["pos"], float), 3), atol=1e-12)
    # the original robot: every joint, dof and motor has its stock settings (same ids: the copy comes after)
    for f in ("jnt_range", "jnt_stiffness", "dof_damping", "dof_armature", "dof_frictionloss", "actuator_gear",
              "actuator_ctrlrange"):
        k = {"jnt": stock.njnt, "dof": stock.nv, "actuator": stock.nu}[f.split("_")[0]]
        np.testing.assert_allclose(field(var, f)[:k], field(stock, f), rtol=1e-12, err_msg=f)
    for f in ("body_pos", "geom_size"):
        k = stock.nbody if f == "body_pos" else stock.ngeom
        np.testing.assert_allclose(field(var, f)[:k], field(stock, f), rtol=1e-12, err_msg=f)
    # the copy's joints and motors: the original's range, damping, stiffness, armature, gear, control range
    for j in joints:
        jn = name(stock, J, j)
        cj = mujoco.mj_name2id(var, J, spec["prefix"] + jn)
        assert cj >= stock.njnt, jn
        for f in ("jnt_range", "jnt_stiffness"):
            np.testing.assert_array_equal(getattr(var, f)[cj], getattr(var, f)[j], err_msg=f"{jn} {f}")
        for f in ("dof_damping", "dof_armature", "dof_frictionloss"):
            assert getattr(var, f)[var.jnt_dofadr[cj]] == getattr(var, f)[var.jnt_dofadr[j]], f"{jn} {f}"
        motors = [a for a in range(var.nu) if var.actuator_trnid[a, 0] == j]
        copies = [a for a in range(var.nu) if var.actuator_trnid[a, 0] == cj]
        assert len(motors) == len(copies) == 1, jn
        assert copies[0] >= stock.nu
        np.testing.assert_array_equal(var.actuator_gear[copies[0]], var.actuator_gear[motors[0]])
        np.testing.assert_array_equal(var.actuator_ctrlrange[copies[0]], var.actuator_ctrlrange[motors[0]])
    # masses: the copy weighs what its original does; the original bodies keep theirs, except that a file with
    # `settotalmass` (HalfCheetah: 14 kg) rescales every body by one factor
    for b in bodies:
        cb = mujoco.mj_name2id(var, B, spec["prefix"] + name(stock, B, b))
        assert var.body_mass[cb] == pytest.approx(var.body_mass[b], rel=1e-9)
        np.testing.assert_allclose(var.body_inertia[cb], var.body_inertia[b], rtol=1e-9)
    ratio = var.body_mass[1:stock.nbody] / stock.body_mass[1:]
    inertia = var.body_inertia[1:stock.nbody] / stock.body_inertia[1:]
    if pair == "cheetah_3leg":
        assert var.body_mass.sum() == pytest.approx(14.0, rel=1e-9) == stock.body_mass.sum()
        added = stock.body_mass[bodies].sum()
        np.testing.assert_allclose(ratio, 14.0 / (14.0 + added), rtol=1e-9)  # one factor for all bodies
        np.testing.assert_allclose(inertia, 14.0 / (14.0 + added), rtol=1e-9)
    else:
        np.testing.assert_allclose(ratio, 1.0, rtol=1e-12)
        np.testing.assert_allclose(inertia, 1.0, rtol=1e-12)


def obs_names(domain: Domain, model) -> list[str]:
    """The joint each observation coordinate measures: positions of qpos addresses (those the task shows), then
    velocities of every dof; the task's hidden leading positions come from the observation size."""
    import mujoco

    env = make_env(Domain(task=domain.task, xml=domain.xml, armature=domain.armature, mass=domain.mass,
                          copy_body=domain.copy_body))
    size = env.observation_space.shape[0]
    env.close()
    pos = [None] * model.nq
    vel = [None] * model.nv
    for j in range(model.njnt):
        jn = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        assert model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        pos[model.jnt_qposadr[j]] = jn
        vel[model.jnt_dofadr[j]] = jn
    skip = model.nq + model.nv - size
    return [f"pos {n}" for n in pos[skip:]] + [f"vel {n}" for n in vel]


def actuated(model) -> list[str]:
    import mujoco

    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0]) for a in range(model.nu)]


@pytest.mark.parametrize("pair", ["cheetah_3leg", "swimmer_4part", "hopper_mass", "cheetah_armature3"])
def test_the_assignments_connect_the_same_physical_joints(pair):
    cfg, _ = load_pair(pair)
    src, tgt = cfg.domain("source"), cfg.domain("target")
    ms, mt = variant_model(src), variant_model(tgt)
    ns, nt = obs_names(src, ms), obs_names(tgt, mt)
    state = cfg.state_assignment or list(range(len(ns)))
    action = cfg.action_assignment or list(range(mt.nu))
    assert len(state) == len(ns) and len(set(state)) == len(state)
    for i, j in enumerate(state):
        assert nt[j] == ns[i], f"{pair}: source obs {i} ({ns[i]}) -> target obs {j} ({nt[j]})"
    prefixes = [""] + [c["prefix"] for c in tgt.copy_body]
    js, jt = actuated(ms), actuated(mt)
    assert len(action) == mt.nu
    for j, i in enumerate(action):
        assert any(jt[j] == p + js[i] for p in prefixes), f"{pair}: target action {j} ({jt[j]}) <- source {i} ({js[i]})"
    if pair == "cheetah_3leg":  # the documented layout: the middle leg driven as the back one
        assert nt[8:11] == ["pos mbthigh", "pos mbshin", "pos mbfoot"] and len(nt) == 23
        assert jt[6:] == ["mbthigh", "mbshin", "mbfoot"]
    if pair == "swimmer_4part":
        assert len(nt) == 10 and nt[3] == "pos tail_motor2_rot" and jt[2] == "tail_motor2_rot"
